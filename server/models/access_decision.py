"""The log of every access decision: why a member was let in, or not."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, BigPK


class AccessDecision(Base):
    """One row per badge tap the server answered.

    Gateway and machine are kept as the slugs the gateway sent, not foreign keys:
    taps on unknown gateways and machines are logged too, and the log must
    outlive renames.
    """

    __tablename__ = "access_decisions"
    # "Why was I last refused?" reads a member's newest decisions.
    __table_args__ = (Index("ix_access_decisions_member_id_at", "member_id", "at"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    gateway_slug: Mapped[str] = mapped_column(String(64))
    machine_slug: Mapped[str] = mapped_column(String(64))
    badge_uid: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    granted: Mapped[bool]
    reason: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(200), default="")

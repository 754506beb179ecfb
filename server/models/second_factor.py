"""A member's confirmation in the web app that they are at a machine (docs/security.md, "Badges")."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class SecondFactorConfirmation(Base):
    """A member's "I am at this machine", said signed in to the web app: on a machine with
    ``second_factor``, their badge is granted only within the confirmation window after it,
    and once (``used_at`` is set by the grant it let through)."""

    __tablename__ = "second_factor_confirmations"
    # The decision asks for a member's latest unused confirmation on a machine.
    __table_args__ = (
        Index(
            "ix_second_factor_confirmations_member_id_machine_id", "member_id", "machine_id", "confirmed_at"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    confirmed_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

"""Members of the workshop: the people who tap badges."""

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.clock import utc_now
from server.db import Base, enum_type

if TYPE_CHECKING:
    from server.models.badge import Badge


class MemberStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # e.g. membership unpaid: badge taps are refused


class Member(Base):
    """Roles are flags here, except *trainer*: a member is a trainer for the skills in
    which they hold a valid trainer-level certification, and for those only."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[MemberStatus] = mapped_column(
        enum_type(MemberStatus, "member_status"), default=MemberStatus.ACTIVE
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    is_manager: Mapped[bool] = mapped_column(default=False)
    """Runs the workshop: may certify and revoke in every skill, among other things."""
    is_treasurer: Mapped[bool] = mapped_column(default=False)
    """Sets prices and closes the books (billing)."""
    address: Mapped[str] = mapped_column(Text, default="")
    """Printed on invoices, one line per line."""
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    """The organisation that pays for this member's usage, at its own prices."""
    price_list_id: Mapped[int | None] = mapped_column(ForeignKey("price_lists.id"))
    """A price list of their own; otherwise the partner or the default list."""
    partner_association: Mapped[str | None] = mapped_column(String(120))
    """A member of this partner association pays member prices."""
    prepaid: Mapped[bool] = mapped_column(default=False)
    """Pays ahead: refused at the machine below the minimum balance."""
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """The argon2id hash of their password (:mod:`server.auth.passwords`); None: cannot sign in."""
    password_changed_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]
    """When a manager erased them (:mod:`server.privacy`): their personal fields are
    pseudonymised, they cannot sign in, and their record no longer changes."""

    badges: Mapped[list["Badge"]] = relationship(back_populates="member", order_by="Badge.id")

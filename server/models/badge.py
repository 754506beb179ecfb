"""RFID badges, each enrolled for one member."""

import re
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from server.clock import utc_now
from server.db import Base
from server.models.member import Member

BADGE_UID = re.compile(r"^[0-9A-F]{4,32}$")
"""As :data:`protocol.messages.BadgeUid`, once upper-cased."""


def normalise_uid(value: str) -> str:
    """The upper-case hex form the gateways send, or a ValueError."""
    uid = value.strip().upper()
    if not BADGE_UID.match(uid):
        raise ValueError(f"badge UID {value!r} is not 4 to 32 hex digits")
    return uid


class Badge(Base):
    __tablename__ = "badges"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    enrolled_at: Mapped[datetime] = mapped_column(default=utc_now)

    member: Mapped[Member] = relationship(back_populates="badges")

    @validates("uid")
    def _normalise_uid(self, key: str, value: str) -> str:
        # Lookups compare exactly: a lower-case UID stored here would never match a tap.
        return normalise_uid(value)

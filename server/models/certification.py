"""A member's certification in a skill, granted by a trainer, maybe expiring."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.clock import utc_now
from server.db import Base, enum_type
from server.models.member import Member
from server.models.skill import Skill


class CertificationLevel(StrEnum):
    SUPERVISED = "supervised"  # may use the machine with a trainer present
    AUTONOMOUS = "autonomous"
    TRAINER = "trainer"  # may also train and certify others


class Certification(Base):
    """Revoking keeps the record (who, when, why): history is never deleted."""

    __tablename__ = "certifications"
    # The access check looks certifications up by member and skill on every tap.
    __table_args__ = (Index("ix_certifications_member_id_skill_id", "member_id", "skill_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"), index=True)
    level: Mapped[CertificationLevel] = mapped_column(enum_type(CertificationLevel, "certification_level"))
    granted_at: Mapped[datetime] = mapped_column(default=utc_now)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(200))

    member: Mapped[Member] = relationship(foreign_keys=[member_id])
    skill: Mapped[Skill] = relationship()
    granted_by: Mapped[Member | None] = relationship(foreign_keys=[granted_by_id])

    def is_valid(self, now: datetime) -> bool:
        """Not revoked, and not expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

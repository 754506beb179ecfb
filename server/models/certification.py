"""A member's certification in a skill, granted by a trainer, maybe expiring; and its history."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

# One definition of the levels, on the wire and in the database.
from protocol.messages import CertificationLevel
from server.clock import utc_now
from server.db import Base, BigPK, append_only, enum_type
from server.models.member import Member
from server.models.skill import Skill

__all__ = [
    "LEVEL_RANK",
    "Certification",
    "CertificationEvent",
    "CertificationEventKind",
    "CertificationLevel",
    "GrantedVia",
]

LEVEL_RANK = {
    CertificationLevel.SUPERVISED: 1,
    CertificationLevel.AUTONOMOUS: 2,
    CertificationLevel.TRAINER: 3,
}
"""Levels in order: a higher level allows everything a lower one does."""


class GrantedVia(StrEnum):
    """Where a certification was granted; the rules are the same everywhere."""

    WEB = "web"  # the API or the web interface
    MACHINE = "machine"  # a trainer's badge, the member's, and the trainer's confirming tap
    SEED = "seed"  # set up by a manager's tool (import, demo, command line)


class Certification(Base):
    """Nothing here is ever deleted: revoking or lapsing sets a date, and each
    change is also a :class:`CertificationEvent`."""

    __tablename__ = "certifications"
    # The access check looks certifications up by member and skill on every tap.
    __table_args__ = (Index("ix_certifications_member_id_skill_id", "member_id", "skill_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"), index=True)
    level: Mapped[CertificationLevel] = mapped_column(enum_type(CertificationLevel, "certification_level"))
    granted_at: Mapped[datetime] = mapped_column(default=utc_now)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    granted_via: Mapped[GrantedVia] = mapped_column(
        enum_type(GrantedVia, "granted_via"), default=GrantedVia.SEED
    )
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
    lapsed_at: Mapped[datetime | None]
    """When it expired (by date or by disuse), once the expiry sweep noticed it. An
    expiry is final: using the skill again under another certification does not revive it."""

    member: Mapped[Member] = relationship(foreign_keys=[member_id])
    skill: Mapped[Skill] = relationship()
    granted_by: Mapped[Member | None] = relationship(foreign_keys=[granted_by_id])

    def is_valid(self, now: datetime) -> bool:
        """Not revoked, not lapsed, and not expired by date at ``now``.

        Disuse needs the member's sessions: :mod:`server.training.expiry` judges it.
        """
        return (
            self.revoked_at is None
            and self.lapsed_at is None
            and (self.expires_at is None or self.expires_at > now)
        )


class CertificationEventKind(StrEnum):
    GRANTED = "granted"
    REVOKED = "revoked"
    EXPIRED = "expired"  # by date or by disuse: the reason says which


@append_only
class CertificationEvent(Base):
    """The history of a certification, append-only: its grant, and its revocation or expiry."""

    __tablename__ = "certification_events"
    # Each happens once to a certification; the key makes a second sweep's expiry a no-op.
    __table_args__ = (UniqueConstraint("certification_id", "kind"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    certification_id: Mapped[int] = mapped_column(ForeignKey("certifications.id"))
    kind: Mapped[CertificationEventKind] = mapped_column(
        enum_type(CertificationEventKind, "certification_event_kind")
    )
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    """Who did it: the trainer or manager; None for an expiry or a seeded record."""
    via: Mapped[str | None] = mapped_column(String(16))
    """``web``, ``machine``, ``seed`` or ``sweep`` (an expiry noticed by the server)."""
    reason: Mapped[str | None] = mapped_column(String(200))
    """Why: a trainer's note on a grant, the reason of a revocation, how it expired."""

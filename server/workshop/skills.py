"""Skills, their prerequisites and disuse periods, and the certifications members hold in them."""

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.models import Certification, CertificationLevel, GrantedVia, Skill, skill_prerequisites
from server.training.history import record_grant, record_revocation
from server.workshop.errors import AlreadyExists, Conflict, InvalidValue, NotFound
from server.workshop.members import get_member
from server.workshop.records import UNCHANGED, added, check_slug, utc, when


def add_skill(
    db: Session,
    slug: str,
    name: str,
    description: str = "",
    *,
    prerequisites: Iterable[str] = (),
    disuse_months: int | None = None,
) -> Skill:
    """A skill; ``prerequisites`` (slugs) must be held before it is certified, and a
    certification in it lapses after ``disuse_months`` months without use, when given."""
    check_slug(slug, "skill")
    if db.scalar(sa.select(Skill.id).where(Skill.slug == slug)) is not None:
        raise AlreadyExists(f"skill {slug} exists already")
    added(db, Skill(slug=slug, name=name, description=description))
    return set_skill_training(db, slug, prerequisites=prerequisites, disuse_months=disuse_months)


def set_skill_training(
    db: Session,
    slug: str,
    *,
    prerequisites: Iterable[str] | None = None,
    disuse_months: int | None = UNCHANGED,
) -> Skill:
    """Change a skill's prerequisites (slugs; None leaves them) and its disuse period
    (None: never lapses by disuse; left out: unchanged). A skill cannot require itself,
    even through others."""
    skill = get_skill(db, slug)
    if disuse_months is not UNCHANGED:
        if disuse_months is not None and not 1 <= disuse_months <= 120:
            raise InvalidValue(f"a disuse period is 1 to 120 months, not {disuse_months}")
        skill.disuse_months = disuse_months
    if prerequisites is not None:
        required = sorted(
            {get_skill(db, other) for other in set(prerequisites)}, key=lambda other: other.slug
        )
        for other in required:
            if other.id == skill.id or skill.id in _prerequisites_of(db, other.id):
                raise InvalidValue(
                    f"{other.slug} cannot be a prerequisite of {slug}: it would require itself"
                )
        skill.prerequisites = required
    db.flush()
    return skill


def _prerequisites_of(db: Session, skill_id: int) -> set[int]:
    """Every skill ``skill_id`` requires, directly or through others."""
    found: set[int] = set()
    frontier = {skill_id}
    while frontier:
        frontier = (
            set(
                db.scalars(
                    sa.select(skill_prerequisites.c.prerequisite_id).where(
                        skill_prerequisites.c.skill_id.in_(sorted(frontier))
                    )
                )
            )
            - found
        )
        found |= frontier
    return found


def get_skill(db: Session, slug: str) -> Skill:
    skill = db.scalar(sa.select(Skill).where(Skill.slug == slug))
    if skill is None:
        raise NotFound(f"no skill {slug}")
    return skill


def grant_certification(
    db: Session,
    member_id: int,
    skill: str,
    *,
    level: CertificationLevel = CertificationLevel.AUTONOMOUS,
    granted_by: int | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
    via: GrantedVia = GrantedVia.SEED,
    note: str | None = None,
) -> Certification:
    """Record that a member is certified in ``skill`` (a slug) by ``granted_by`` (a member id),
    with its history event and audit entry.

    This checks no rule of who may certify: it is how a manager's tool seeds records, and what
    :func:`server.training.certify.grant` calls once the rules are met.
    """
    if expires_at is not None:
        expires_at = utc(expires_at, "expires_at")
    get_member(db, member_id)
    found = get_skill(db, skill)
    if granted_by is not None:
        get_member(db, granted_by)
    certification = added(
        db,
        Certification(
            member_id=member_id,
            skill_id=found.id,
            level=level,
            granted_by_id=granted_by,
            granted_at=when(now),
            granted_via=via,
            expires_at=expires_at,
        ),
    )
    record_grant(db, certification, note=note, skill=found.slug)
    db.flush()
    return certification


def get_certification(db: Session, certification_id: int) -> Certification:
    certification = db.get(Certification, certification_id)
    if certification is None:
        raise NotFound(f"no certification {certification_id}")
    return certification


def revoke_certification(
    db: Session,
    certification_id: int,
    *,
    reason: str | None = None,
    now: datetime | None = None,
    by: int | None = None,
    via: GrantedVia = GrantedVia.SEED,
) -> Certification:
    """Record a revocation by ``by`` (a member id), with its event and audit entry; no rule
    is checked here (see :func:`server.training.certify.revoke`)."""
    certification = get_certification(db, certification_id)
    if certification.revoked_at is not None:
        raise Conflict(f"certification {certification_id} was already revoked")
    if by is not None:
        get_member(db, by)
    certification.revoked_at = when(now)
    certification.revoked_by_id = by
    certification.revoke_reason = reason
    db.flush()
    record_revocation(
        db, certification, via=via.value, skill=certification.skill.slug, at=certification.revoked_at
    )
    db.flush()
    return certification

"""Certifications as people read them: who, what, at which level, by whom, and until when."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from protocol.messages import CertificationLevel
from server.models import Certification, CertificationEvent, GrantedVia, Member, Skill
from server.training.expiry import last_use_if_disuse, standing


class CertificationStatus(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"  # by date or by disuse
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class CertificationView:
    id: int
    member_id: int
    member_name: str
    skill: str
    skill_name: str
    level: CertificationLevel
    status: CertificationStatus
    granted_at: datetime
    granted_by: int | None
    granted_by_name: str | None
    granted_via: GrantedVia
    expires_at: datetime | None
    """The expiry date set when it was granted, if any."""
    disuse_deadline: datetime | None
    """When it lapses unless the member uses a machine requiring the skill before; None: no disuse period."""
    ends_at: datetime | None
    """The earlier of the two: when it stops (or stopped) counting; None: never, unless revoked."""
    expired_by_disuse: bool
    revoked_at: datetime | None
    revoke_reason: str | None


_granter = aliased(Member, name="granter")


def certifications(
    db: Session,
    now: datetime,
    *criteria: sa.ColumnElement[bool],
    limit: int = 100,
    offset: int = 0,
) -> list[CertificationView]:
    """Certifications matching ``criteria`` (on Certification, Skill, Member), newest first, in one query."""
    query = (
        sa.select(
            Certification,
            Skill.slug,
            Skill.name,
            Skill.disuse_months,
            Member.name,
            _granter.name,
            last_use_if_disuse(Certification.member_id, Skill.id, Skill.disuse_months),
        )
        .join(Skill, Skill.id == Certification.skill_id)
        .join(Member, Member.id == Certification.member_id)
        .outerjoin(_granter, _granter.id == Certification.granted_by_id)
        .where(*criteria)
        .order_by(Certification.granted_at.desc(), Certification.id.desc())
        .limit(limit)
        .offset(offset)
    )
    views = []
    for certification, slug, skill_name, disuse_months, member_name, granter_name, last_used in db.execute(
        query
    ):
        found = standing(
            granted_at=certification.granted_at,
            expires_at=certification.expires_at,
            lapsed_at=certification.lapsed_at,
            disuse_months=disuse_months,
            last_used=last_used,
            now=now,
        )
        if certification.revoked_at is not None:
            status = CertificationStatus.REVOKED
        else:
            status = CertificationStatus.VALID if found.valid else CertificationStatus.EXPIRED
        views.append(
            CertificationView(
                id=certification.id,
                member_id=certification.member_id,
                member_name=member_name,
                skill=slug,
                skill_name=skill_name,
                level=certification.level,
                status=status,
                granted_at=certification.granted_at,
                granted_by=certification.granted_by_id,
                granted_by_name=granter_name,
                granted_via=certification.granted_via,
                expires_at=certification.expires_at,
                disuse_deadline=found.disuse_deadline if certification.lapsed_at is None else None,
                ends_at=found.ends_at,
                expired_by_disuse=found.by_disuse and not found.valid,
                revoked_at=certification.revoked_at,
                revoke_reason=certification.revoke_reason,
            )
        )
    return views


def history(db: Session, certification_id: int) -> list[CertificationEvent]:
    """A certification's events, oldest first."""
    return list(
        db.scalars(
            sa.select(CertificationEvent)
            .where(CertificationEvent.certification_id == certification_id)
            .order_by(CertificationEvent.at, CertificationEvent.id)
        )
    )

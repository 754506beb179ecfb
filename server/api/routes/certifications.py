"""Certifications: list them and look one up (trainers and managers; a member sees their own at ``/me``).

Granting and revoking go through the rules of training, as the member acting:
``POST /api/v1/training/certifications`` and ``.../{id}/revoke`` (:mod:`server.api.routes.training`).
"""

from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.orm import selectinload

from server import workshop
from server.api.deps import PageDep, SessionDep
from server.auth.policy import TrainerRead
from server.ids import Ident
from server.models import Certification, CertificationLevel, GrantedVia, Skill

router = APIRouter(prefix="/certifications", tags=["certifications"])


class CertificationOut(BaseModel):
    id: int
    member_id: int
    skill: str
    level: CertificationLevel
    granted_at: datetime
    granted_by: int | None
    expires_at: datetime | None
    granted_via: GrantedVia
    revoked_at: datetime | None
    revoke_reason: str | None
    lapsed_at: datetime | None
    """When it expired, by date or by disuse, once the server recorded it."""

    @classmethod
    def of(cls, certification: Certification) -> "CertificationOut":
        return cls(
            id=certification.id,
            member_id=certification.member_id,
            skill=certification.skill.slug,
            level=certification.level,
            granted_at=certification.granted_at,
            granted_by=certification.granted_by_id,
            expires_at=certification.expires_at,
            granted_via=certification.granted_via,
            revoked_at=certification.revoked_at,
            revoke_reason=certification.revoke_reason,
            lapsed_at=certification.lapsed_at,
        )


@router.get("")
def list_certifications(
    *,
    caller: TrainerRead,
    db: SessionDep,
    page: PageDep,
    member: int | None = None,
    skill: Ident | None = None,
    include_revoked: bool = False,
) -> list[CertificationOut]:
    query = (
        sa.select(Certification)
        .options(selectinload(Certification.skill))
        .order_by(Certification.granted_at.desc(), Certification.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    )
    if member is not None:
        query = query.where(Certification.member_id == member)
    if skill is not None:
        query = query.join(Skill, Skill.id == Certification.skill_id).where(Skill.slug == skill)
    if not include_revoked:
        query = query.where(Certification.revoked_at.is_(None))
    return [CertificationOut.of(certification) for certification in db.scalars(query)]


@router.get("/{certification_id}")
def get_certification(certification_id: int, caller: TrainerRead, db: SessionDep) -> CertificationOut:
    return CertificationOut.of(workshop.get_certification(db, certification_id))

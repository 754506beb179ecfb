"""Certifications: grant one to a member in a skill, revoke it, list them."""

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints
from sqlalchemy.orm import selectinload

from protocol.ids import Ident
from server import workshop
from server.api.deps import PageDep, SessionDep
from server.models import Certification, CertificationLevel, Skill

router = APIRouter(prefix="/certifications", tags=["certifications"])


class CertificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: int
    skill: Ident
    level: CertificationLevel = CertificationLevel.AUTONOMOUS
    granted_by: int | None = None
    """The trainer's member id."""
    expires_at: AwareDatetime | None = None


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None


class CertificationOut(BaseModel):
    id: int
    member_id: int
    skill: str
    level: CertificationLevel
    granted_at: datetime
    granted_by: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str | None

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
            revoked_at=certification.revoked_at,
            revoke_reason=certification.revoke_reason,
        )


@router.get("")
def list_certifications(
    *,
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


@router.post("", status_code=status.HTTP_201_CREATED)
def grant_certification(body: CertificationIn, db: SessionDep) -> CertificationOut:
    certification = workshop.grant_certification(
        db,
        body.member_id,
        body.skill,
        level=body.level,
        granted_by=body.granted_by,
        expires_at=body.expires_at,
    )
    db.commit()
    return CertificationOut.of(certification)


@router.get("/{certification_id}")
def get_certification(certification_id: int, db: SessionDep) -> CertificationOut:
    return CertificationOut.of(workshop.get_certification(db, certification_id))


@router.post("/{certification_id}/revoke")
def revoke_certification(certification_id: int, body: RevokeIn, db: SessionDep) -> CertificationOut:
    certification = workshop.revoke_certification(db, certification_id, reason=body.reason)
    db.commit()
    return CertificationOut.of(certification)

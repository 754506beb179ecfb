"""What a member sees of themself: who they are, their certifications, and why they were refused."""

from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel

from server.api.deps import ClockDep, CurrentMember, PageDep, SessionDep
from server.api.routes.decisions import DecisionOut
from server.models import AccessDecision, Certification, MemberStatus, Skill
from server.training import listing
from server.training.listing import CertificationView
from server.training.rules import trained_skills

router = APIRouter(prefix="/me", tags=["me"])


class MeOut(BaseModel):
    id: int
    name: str
    email: str | None
    status: MemberStatus
    is_manager: bool
    is_treasurer: bool
    trainer_for: list[str]
    """The skills you may train and certify in."""
    created_at: datetime


@router.get("")
def who_am_i(db: SessionDep, me: CurrentMember, clock: ClockDep) -> MeOut:
    trains = trained_skills(db, me.id, clock())
    slugs = db.scalars(sa.select(Skill.slug).where(Skill.id.in_(sorted(trains))).order_by(Skill.slug)).all()
    return MeOut(
        id=me.id,
        name=me.name,
        email=me.email,
        status=me.status,
        is_manager=me.is_manager,
        is_treasurer=me.is_treasurer,
        trainer_for=list(slugs),
        created_at=me.created_at,
    )


@router.get("/certifications")
def my_certifications(
    *, db: SessionDep, page: PageDep, me: CurrentMember, clock: ClockDep, include_revoked: bool = False
) -> list[CertificationView]:
    """Your certifications, newest first: level, who granted it, its expiry date and disuse deadline."""
    criteria = [Certification.member_id == me.id]
    if not include_revoked:
        criteria.append(Certification.revoked_at.is_(None))
    return listing.certifications(db, clock(), *criteria, limit=page.limit, offset=page.offset)


@router.get("/decisions")
def my_decisions(
    *,
    db: SessionDep,
    page: PageDep,
    me: CurrentMember,
    granted: bool | None = None,
    since: AwareDatetime | None = None,
) -> list[DecisionOut]:
    """Your last badge taps, newest first, each with why it was granted or refused
    (``granted=false``: only the refusals)."""
    query = (
        sa.select(AccessDecision)
        .where(AccessDecision.member_id == me.id)
        .order_by(AccessDecision.at.desc(), AccessDecision.id.desc())
    )
    if granted is not None:
        query = query.where(AccessDecision.granted == granted)
    if since is not None:
        query = query.where(AccessDecision.at >= since)
    rows = db.scalars(query.limit(page.limit).offset(page.offset))
    return [DecisionOut.model_validate(decision) for decision in rows]

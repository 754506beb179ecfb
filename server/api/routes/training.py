"""Training, for trainers and managers: certify, revoke, my trainees, what expires soon.

Every route acts as the member signed in (or whose API token the request carries): trainers
and managers (:mod:`server.auth.policy`). Only a trainer for the skill (a valid trainer-level
certification) or a manager may certify or revoke in it (:mod:`server.training.rules`);
nobody certifies themself; prerequisites come first.
"""

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from protocol.messages import CertificationLevel
from server import workshop
from server.api.deps import ClockDep, PageDep, SessionDep
from server.auth.policy import Role, SignedIn, TrainerRead, TrainerWrite
from server.ids import Ident
from server.models import Certification, GrantedVia, Member
from server.training import certify, listing
from server.training.expiry import expiring
from server.training.listing import CertificationView
from server.training.rules import trained_skills

router = APIRouter(prefix="/training", tags=["training"])

Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class CertifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: int
    skill: Ident
    level: CertificationLevel = CertificationLevel.AUTONOMOUS
    expires_at: AwareDatetime | None = None
    note: Note | None = None
    """Why, or what the training covered: kept in the certification's history."""


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    """Why: the member reads it."""


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    at: datetime
    actor_id: int | None
    via: str | None
    reason: str | None


class ExpiringOut(BaseModel):
    certification_id: int
    member_id: int
    member_name: str
    skill: str
    level: CertificationLevel
    ends_at: datetime
    by_disuse: bool
    """True: it lapses for lack of use (a session on a machine requiring the skill renews it)."""
    expires_at: datetime | None
    disuse_deadline: datetime | None


def view_of(db: SessionDep, certification: Certification, now: datetime) -> CertificationView:
    return listing.certifications(db, now, Certification.id == certification.id)[0]


def _may_see_history(db: SessionDep, me: Member, certification: Certification, now: datetime) -> bool:
    return (
        me.is_manager
        or me.id == certification.member_id
        or certification.skill_id in trained_skills(db, me.id, now)
    )


@router.post("/certifications", status_code=status.HTTP_201_CREATED)
def certify_member(
    body: CertifyIn, db: SessionDep, caller: TrainerWrite, clock: ClockDep
) -> CertificationView:
    """Certify a member in a skill. 403: you are not a trainer for it nor a manager, or it is
    yourself; 409: a prerequisite is missing, the member already holds this level, or is suspended."""
    now = clock()
    certification = certify.grant(
        db,
        actor_id=caller.id,
        member_id=body.member_id,
        skill=body.skill,
        level=body.level,
        now=now,
        expires_at=body.expires_at,
        note=body.note,
        via=GrantedVia.WEB,
    )
    db.commit()
    return view_of(db, certification, now)


@router.post("/certifications/{certification_id}/revoke")
def revoke_certification(
    certification_id: int, body: RevokeIn, db: SessionDep, caller: TrainerWrite, clock: ClockDep
) -> CertificationView:
    """Revoke a certification, saying why; the same people who may grant it may revoke it."""
    now = clock()
    certification = certify.revoke(
        db,
        actor_id=caller.id,
        certification_id=certification_id,
        reason=body.reason,
        now=now,
        via=GrantedVia.WEB,
    )
    db.commit()
    return view_of(db, certification, now)


@router.get("/certifications/{certification_id}/events")
def certification_history(
    certification_id: int, db: SessionDep, caller: SignedIn, clock: ClockDep
) -> list[EventOut]:
    """Its grant, and its revocation or expiry: for its member, its skill's trainers and managers."""
    certification = workshop.get_certification(db, certification_id)
    if not _may_see_history(db, caller.member, certification, clock()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Only the member, a trainer for the skill or a manager may see this history.",
        )
    return [EventOut.model_validate(event) for event in listing.history(db, certification_id)]


@router.get("/trainees")
def my_trainees(
    *,
    db: SessionDep,
    page: PageDep,
    caller: TrainerRead,
    clock: ClockDep,
    skill: Ident | None = None,
) -> list[CertificationView]:
    """The certifications you granted, newest first, with where each stands now."""
    criteria = [Certification.granted_by_id == caller.id]
    if skill is not None:
        criteria.append(Certification.skill.has(slug=skill))
    return listing.certifications(db, clock(), *criteria, limit=page.limit, offset=page.offset)


@router.get("/expiring")
def expiring_soon(
    *,
    db: SessionDep,
    caller: TrainerRead,
    clock: ClockDep,
    days: Annotated[int, Query(ge=1, le=366, description="within this many days")] = 30,
) -> list[ExpiringOut]:
    """Valid certifications that expire, by date or by disuse, within ``days``: in the skills
    you train (a manager sees every skill). Soonest first."""
    now = clock()
    skills = None if caller.has(Role.MANAGER, db, clock) else trained_skills(db, caller.id, now)
    if skills is not None and not skills:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "You train no skill: only trainers and managers see this list."
        )
    found = expiring(db, now, now + timedelta(days=days), skills)
    return [ExpiringOut.model_validate(item, from_attributes=True) for item in found]

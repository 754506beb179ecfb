"""Trainers (and managers): certify and revoke, my trainees, what expires soon, supervised sessions.

The same rules as ``/api/v1/training`` (:mod:`server.training.certify`): a trainer certifies
in the skills they train, a manager in every skill, nobody themself, prerequisites first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import selectinload

from protocol.messages import CertificationLevel
from server.api.deps import ClockDep, SessionDep
from server.auth.policy import Role
from server.models import Certification, GrantedVia, Member, MemberStatus, Skill, UsageSession
from server.training import certify, listing
from server.training.expiry import expiring
from server.training.rules import trained_skills
from server.web import forms
from server.web.render import render
from server.web.session import TrainerUser

router = APIRouter(prefix="/training", include_in_schema=False)

EXPIRING_DAYS = 30


@router.get("", response_class=HTMLResponse)
def training_page(
    request: Request,
    caller: TrainerUser,
    db: SessionDep,
    clock: ClockDep,
    member: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    now = clock()
    manager = caller.has(Role.MANAGER, db, clock)
    trains = None if manager else trained_skills(db, caller.id, now)
    skills_query = sa.select(Skill).order_by(Skill.name)
    if trains is not None:
        skills_query = skills_query.where(Skill.id.in_(sorted(trains)))
    supervised = sa.select(UsageSession).options(
        selectinload(UsageSession.machine),
        selectinload(UsageSession.member),
        selectinload(UsageSession.supervisor),
    )
    supervised = supervised.where(
        UsageSession.supervisor_id == caller.id if not manager else UsageSession.supervisor_id.is_not(None)
    )
    chosen = db.get(Member, member) if member is not None else None
    context = {
        "manager": manager,
        "skills": list(db.scalars(skills_query)),
        "skill_names": dict(db.execute(sa.select(Skill.slug, Skill.name)).all()),
        "members": list(
            db.scalars(
                sa.select(Member)
                .where(
                    Member.status == MemberStatus.ACTIVE, Member.erased_at.is_(None), Member.id != caller.id
                )
                .order_by(Member.name)
            )
        ),
        "levels": list(CertificationLevel),
        "expiring": expiring(db, now, now + timedelta(days=EXPIRING_DAYS), trains),
        "expiring_days": EXPIRING_DAYS,
        "trainees": listing.certifications(db, now, Certification.granted_by_id == caller.id, limit=50),
        "supervised": list(
            db.scalars(supervised.order_by(UsageSession.started_at.desc(), UsageSession.id.desc()).limit(20))
        ),
        "chosen": chosen,
        "chosen_certifications": (
            listing.certifications(db, now, Certification.member_id == chosen.id) if chosen else []
        ),
    }
    return render(request, "training/home.html", context, caller=caller, db=db, clock=clock)


@router.post("/certify")
def certify_member(
    *,
    caller: TrainerUser,
    db: SessionDep,
    clock: ClockDep,
    member_id: Annotated[str, Form()] = "",
    skill: Annotated[str, Form()] = "",
    level: Annotated[str, Form()] = CertificationLevel.AUTONOMOUS.value,
    expires_on: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    now = clock()

    def act() -> dict[str, object]:
        try:
            chosen_level = CertificationLevel(level)
        except ValueError:
            raise forms.BadField() from None
        expiry = forms.optional_day(expires_on)
        certification = certify.grant(
            db, actor_id=caller.id, member_id=forms.number(member_id, minimum=1), skill=forms.text(skill, limit=64),
            level=chosen_level, now=now, expires_at=forms.end_of_day(expiry) if expiry else None,
            note=forms.optional_text(note), via=GrantedVia.WEB,
        )  # fmt: skip
        return {"name": certification.member.name, "skill": certification.skill.name}

    return forms.attempt(db, act, back="/training", ok="flash.certified")


@router.post("/certifications/{certification_id}/revoke")
def revoke_certification(
    *,
    certification_id: int,
    caller: TrainerUser,
    db: SessionDep,
    clock: ClockDep,
    reason: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "/training",
) -> Response:
    def act() -> dict[str, object]:
        revoked = certify.revoke(
            db, actor_id=caller.id, certification_id=certification_id, reason=forms.text(reason),
            now=clock(), via=GrantedVia.WEB,
        )  # fmt: skip
        return {"name": revoked.member.name, "skill": revoked.skill.name}

    target = back if back.startswith("/training") else "/training"
    return forms.attempt(db, act, back=target, ok="flash.revoked")

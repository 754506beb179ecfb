"""A trainer certifies a member at the machine: trainer's badge, member's badge, trainer's confirming tap.

The gateway sends a :class:`~protocol.messages.CertifyRequest`; :func:`certify_at_machine`
checks who is who, then grants every skill the machine requires that the member does not
already hold at that level or higher, through :func:`server.training.certify.grant` — the
very call the API makes, so the record is the same, with ``via = machine``.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import CertificationLevel, CertifyReply, CertifyRequest, Reason
from server.models import LEVEL_RANK, Badge, Gateway, GrantedVia, Machine, Member, MemberStatus, Skill
from server.training.certify import grant
from server.training.errors import (
    MemberInactive,
    NotPermitted,
    PrerequisiteMissing,
    SelfCertification,
    TrainingError,
)
from server.training.rules import held
from server.workshop import WorkshopError

log = logging.getLogger(__name__)

MESSAGE_MAX = 200  # CertifyReply.message
NAME_MAX = 120  # CertifyReply.member_name


@dataclass(frozen=True, slots=True)
class _Holder:
    member: Member
    badge_active: bool


def _holder(db: Session, uid: str) -> _Holder | None:
    found = db.execute(
        sa.select(Member, Badge.active).join(Badge, Badge.member_id == Member.id).where(Badge.uid == uid)
    ).first()
    return None if found is None else _Holder(found[0], found[1])


class _Refusal(Exception):
    """Why the certification is refused; caught in :func:`certify_at_machine`."""

    def __init__(self, reason: Reason, message: str, member: Member | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.member = reason, message, member


def certify_at_machine(
    db: Session, site: str, gateway_slug: str, request: CertifyRequest, now: datetime
) -> CertifyReply:
    """Answer ``request`` from ``gateway_slug`` of ``site``: grant and commit, or refuse and say why."""
    try:
        machine, skills = _place(db, site, gateway_slug, request)
        trainer = _trainer(db, request, skills, now)
        member = _member(db, request, trainer)
        granted = _grant_missing(
            db, request, machine=machine, skills=skills, trainer=trainer, member=member, now=now
        )
    except _Refusal as refusal:
        db.rollback()
        log.info(
            "certification at %s/%s refused: %s (%s)",
            gateway_slug,
            request.machine,
            refusal.reason.value,
            refusal.message,
        )
        return _reply(request, refusal.reason, refusal.message, refusal.member)
    except BaseException:
        db.rollback()
        raise
    db.commit()
    level = request.level.value
    if granted:
        names = ", ".join(skill.name for skill in skills if skill.slug in granted)
        message = f"{member.name} is now certified {level} for {names}, by {trainer.name}."
    else:
        message = f"{member.name} already holds what {machine.name} requires at the {level} level."
    log.info(
        "certification at %s/%s: member %d certified %s in %s by trainer %d",
        gateway_slug,
        machine.slug,
        member.id,
        level,
        granted or "nothing new",
        trainer.id,
    )
    return _reply(request, Reason.GRANTED, message, member, granted)


def _place(db: Session, site: str, gateway_slug: str, request: CertifyRequest) -> tuple[Machine, list[Skill]]:
    gateway = db.scalar(sa.select(Gateway).where(Gateway.slug == gateway_slug, Gateway.site == site))
    if gateway is None:
        raise _Refusal(Reason.UNKNOWN_GATEWAY, f"Gateway {gateway_slug} is not registered here.")
    machine = db.scalar(
        sa.select(Machine).where(Machine.slug == request.machine, Machine.gateway_id == gateway.id)
    )
    if machine is None:
        raise _Refusal(Reason.UNKNOWN_MACHINE, f"Machine {request.machine} is not known on this gateway.")
    skills: list[Skill] = list(machine.required_skills)
    if not skills:
        raise _Refusal(Reason.BAD_REQUEST, f"{machine.name} requires no skill: there is nothing to certify.")
    return machine, skills


def _trainer(db: Session, request: CertifyRequest, skills: list[Skill], now: datetime) -> Member:
    """The first badge's holder, a trainer for every skill the machine requires (a manager is not enough here)."""
    trainer = _holder(db, request.trainer_badge)
    if trainer is None or not trainer.badge_active or trainer.member.status is not MemberStatus.ACTIVE:
        raise _Refusal(Reason.NOT_A_TRAINER, "The first badge is not an active trainer's.")
    trains = held(db, trainer.member.id, now, [skill.id for skill in skills])
    untrained = [
        skill.name
        for skill in skills
        if skill.id not in trains or trains[skill.id].level is not CertificationLevel.TRAINER
    ]
    if untrained:
        raise _Refusal(
            Reason.NOT_A_TRAINER, f"{trainer.member.name} is not a trainer for {', '.join(untrained)}."
        )
    return trainer.member


def _member(db: Session, request: CertifyRequest, trainer: Member) -> Member:
    holder = _holder(db, request.member_badge)
    if holder is None:
        raise _Refusal(Reason.UNKNOWN_BADGE, "The member's badge is not enrolled: ask a manager.")
    member = holder.member
    if not holder.badge_active:
        raise _Refusal(Reason.BADGE_DISABLED, "The member's badge is disabled: ask a manager.", member)
    if member.id == trainer.id:
        raise _Refusal(Reason.SELF_CERTIFICATION, "Nobody certifies themself: ask another trainer.", member)
    if member.status is not MemberStatus.ACTIVE:
        raise _Refusal(Reason.MEMBER_INACTIVE, f"{member.name}'s membership is suspended.", member)
    return member


def _grant_missing(
    db: Session,
    request: CertifyRequest,
    *,
    machine: Machine,
    skills: list[Skill],
    trainer: Member,
    member: Member,
    now: datetime,
) -> list[str]:
    """Grant each required skill the member lacks at the requested level; the slugs granted."""
    holds = held(db, member.id, now, [skill.id for skill in skills])
    wanted = [
        skill for skill in skills
        if skill.id not in holds or LEVEL_RANK[holds[skill.id].level] < LEVEL_RANK[request.level]
    ]  # fmt: skip
    granted: list[str] = []
    try:
        # Prerequisites first: a skill whose prerequisite the machine also requires may be
        # granted in the same confirmation, once that prerequisite is.
        while wanted:
            ready = [skill for skill in wanted if _prerequisites_met(db, member, skill, now)]
            if not ready:
                missing = sorted({p.name for skill in wanted for p in skill.prerequisites})
                raise PrerequisiteMissing(f"{member.name} must first hold {', '.join(missing)}.")
            for skill in ready:
                grant(
                    db,
                    actor_id=trainer.id,
                    member_id=member.id,
                    skill=skill.slug,
                    level=request.level,
                    now=now,
                    note=f"certified at the machine {machine.slug}",
                    via=GrantedVia.MACHINE,
                )
                granted.append(skill.slug)
            wanted = [skill for skill in wanted if skill not in ready]
    except TrainingError as error:
        raise _Refusal(_reason_of(error), str(error), member) from None
    except WorkshopError as error:
        raise _Refusal(Reason.BAD_REQUEST, str(error), member) from None
    return granted


def _prerequisites_met(db: Session, member: Member, skill: Skill, now: datetime) -> bool:
    if not skill.prerequisites:
        return True
    holds = held(db, member.id, now, [other.id for other in skill.prerequisites])
    return all(other.id in holds for other in skill.prerequisites)


def _reason_of(error: TrainingError) -> Reason:
    if isinstance(error, SelfCertification):
        return Reason.SELF_CERTIFICATION
    if isinstance(error, NotPermitted):
        return Reason.NOT_A_TRAINER
    if isinstance(error, PrerequisiteMissing):
        return Reason.PREREQUISITE_MISSING
    if isinstance(error, MemberInactive):
        return Reason.MEMBER_INACTIVE
    return Reason.BAD_REQUEST


def _reply(
    request: CertifyRequest,
    reason: Reason,
    message: str,
    member: Member | None = None,
    skills: list[str] | None = None,
) -> CertifyReply:
    return CertifyReply(
        request_id=request.request_id,
        machine=request.machine,
        member_badge=request.member_badge,
        certified=reason is Reason.GRANTED,
        reason=reason,
        message=_clip(message, MESSAGE_MAX),
        member_id=member.id if member is not None else None,
        member_name=_clip(member.name, NAME_MAX) if member is not None else None,
        skills=skills or [],
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""Who may certify whom: the rules of training, checked the same way from the API and the machine.

- Only a member holding a valid trainer-level certification in a skill, or a manager,
  may certify or revoke in that skill; and only while their own membership is active.
- Nobody certifies themself, nor revokes their own certification.
- A member must first hold a valid certification (any level) in every prerequisite skill.
- A certification counts when it is unrevoked and valid by date and by disuse
  (:func:`server.training.expiry.standing`).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import CertificationLevel
from server.db import table
from server.models import LEVEL_RANK, Certification, Member, MemberStatus, Skill
from server.training.errors import NotATrainer, NotPermitted, PrerequisiteMissing, SelfCertification
from server.training.expiry import Standing, last_use_if_disuse, standing

_certifications = table(Certification).c
_skills = table(Skill).c

_HELD = (
    sa.select(
        _certifications.id,
        _certifications.skill_id,
        _certifications.level,
        _certifications.granted_at,
        _certifications.expires_at,
        _skills.disuse_months,
        last_use_if_disuse(_certifications.member_id, _skills.id, _skills.disuse_months),
    )
    .select_from(table(Certification).join(table(Skill), _skills.id == _certifications.skill_id))
    .where(
        _certifications.member_id == sa.bindparam("member"),
        _certifications.revoked_at.is_(None),
        _certifications.lapsed_at.is_(None),
    )
)


@dataclass(frozen=True, slots=True)
class Held:
    """A member's best valid certification in a skill."""

    certification_id: int
    level: CertificationLevel
    standing: Standing


def held(
    db: Session, member_id: int, now: datetime, skill_ids: Iterable[int] | None = None
) -> dict[int, Held]:
    """The member's best valid certification per skill (of ``skill_ids``, or all), in one query."""
    query = _HELD
    if skill_ids is not None:
        query = query.where(_certifications.skill_id.in_(sorted(set(skill_ids))))
    best: dict[int, Held] = {}
    for certification_id, skill_id, level, granted_at, expires_at, disuse_months, last_used in db.execute(
        query, {"member": member_id}
    ):
        found = standing(
            granted_at=granted_at,
            expires_at=expires_at,
            lapsed_at=None,
            disuse_months=disuse_months,
            last_used=last_used,
            now=now,
        )
        if not found.valid:
            continue
        current = best.get(skill_id)
        if current is None or LEVEL_RANK[level] > LEVEL_RANK[current.level]:
            best[skill_id] = Held(certification_id, level, found)
    return best


def trained_skills(db: Session, member_id: int, now: datetime) -> set[int]:
    """The skills ``member_id`` may train and certify in (valid trainer-level certifications)."""
    return {
        skill_id
        for skill_id, best in held(db, member_id, now).items()
        if best.level is CertificationLevel.TRAINER
    }


def check_not_self(actor: Member, member_id: int, *, revoking: bool = False) -> None:
    if actor.id == member_id:
        if revoking:
            raise SelfCertification(
                "Nobody revokes their own certification: ask another trainer or a manager."
            )
        raise SelfCertification("Nobody certifies themself: ask another trainer or a manager.")


def check_may_train(db: Session, actor: Member, skill: Skill, now: datetime) -> None:
    """Raise unless ``actor`` may certify or revoke in ``skill``: a manager, or one of its trainers."""
    if actor.status is not MemberStatus.ACTIVE:
        raise NotPermitted(f"{actor.name}'s membership is suspended: a suspended member certifies no one.")
    if actor.is_manager:
        return
    best = held(db, actor.id, now, [skill.id]).get(skill.id)
    if best is None or best.level is not CertificationLevel.TRAINER:
        raise NotATrainer(
            f"{actor.name} is not a trainer for {skill.name}: only its trainers or a manager certify or revoke in it."
        )


def check_prerequisites(db: Session, member: Member, skill: Skill, now: datetime) -> None:
    """Raise unless ``member`` validly holds every prerequisite of ``skill``."""
    if not skill.prerequisites:
        return
    holds = held(db, member.id, now, [other.id for other in skill.prerequisites])
    missing = [other.name for other in skill.prerequisites if other.id not in holds]
    if missing:
        raise PrerequisiteMissing(f"{member.name} must first hold {', '.join(missing)} before {skill.name}.")

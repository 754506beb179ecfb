"""Granting and revoking certifications, by the rules, for the API and the machine alike.

A certification at the machine goes through :func:`grant` exactly as one from the
API does: same checks, same record, same history event and audit entry; only its
``via`` differs. Nothing here commits: the caller's transaction holds the change,
its event and its audit entry together.
"""

from datetime import datetime

from sqlalchemy.orm import Session

from protocol.messages import CertificationLevel
from server import workshop
from server.models import LEVEL_RANK, Certification, GrantedVia, MemberStatus
from server.training.errors import AlreadyCertified, MemberInactive, ReasonRequired
from server.training.rules import check_may_train, check_not_self, check_prerequisites, held

NOTE_MAX = 200
"""A grant's note and a revocation's reason are kept in 200 characters."""


def grant(
    db: Session,
    *,
    actor_id: int,
    member_id: int,
    skill: str,
    level: CertificationLevel,
    now: datetime,
    expires_at: datetime | None = None,
    note: str | None = None,
    via: GrantedVia = GrantedVia.WEB,
) -> Certification:
    """``actor_id`` certifies ``member_id`` in ``skill`` (a slug) at ``level``, or a
    :class:`~server.training.errors.TrainingError` says why not.

    The checks, in order: the member exists and is not the actor; the actor may train
    the skill; the member is active; holds every prerequisite; and does not already
    hold the skill at this level or higher.
    """
    actor = workshop.get_member(db, actor_id)
    member = workshop.get_member(db, member_id)
    found = workshop.get_skill(db, skill)
    check_not_self(actor, member.id)
    check_may_train(db, actor, found, now)
    if member.status is not MemberStatus.ACTIVE:
        raise MemberInactive(
            f"{member.name}'s membership is suspended: reactivate it before certifying them."
        )
    check_prerequisites(db, member, found, now)
    current = held(db, member.id, now, [found.id]).get(found.id)
    if current is not None and LEVEL_RANK[current.level] >= LEVEL_RANK[level]:
        raise AlreadyCertified(
            f"{member.name} already holds {found.name} at the {current.level.value} level "
            f"(certification {current.certification_id}): revoke it first to record a lower one."
        )
    if expires_at is not None and expires_at.utcoffset() is not None and expires_at <= now:
        raise workshop.InvalidValue("the expiry date is already past")
    clean_note = (note or "").strip()[:NOTE_MAX] or None
    return workshop.grant_certification(
        db,
        member.id,
        found.slug,
        level=level,
        granted_by=actor.id,
        expires_at=expires_at,
        now=now,
        via=via,
        note=clean_note,
    )


def revoke(
    db: Session,
    *,
    actor_id: int,
    certification_id: int,
    reason: str,
    now: datetime,
    via: GrantedVia = GrantedVia.WEB,
) -> Certification:
    """``actor_id`` revokes a certification, saying why; the same people who may grant it may revoke it."""
    why = reason.strip()
    if not why:
        raise ReasonRequired("Say why the certification is revoked: the member will read it.")
    if len(why) > NOTE_MAX:
        raise ReasonRequired(f"A revocation's reason is at most {NOTE_MAX} characters.")
    certification = workshop.get_certification(db, certification_id)
    actor = workshop.get_member(db, actor_id)
    check_not_self(actor, certification.member_id, revoking=True)
    check_may_train(db, actor, certification.skill, now)
    return workshop.revoke_certification(db, certification.id, reason=why, now=now, by=actor.id, via=via)

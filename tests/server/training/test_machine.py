"""A trainer certifies a member at the machine: every refusal, and a grant recorded as one from the web."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import CertificationLevel, CertifyReply, CertifyRequest, Reason
from server import workshop as manage
from server.clock import to_ms
from server.models import AuditEntry, Certification, CertificationEvent, GrantedVia, MemberStatus
from server.training.machine import certify_at_machine
from tests.server.conftest import NOW, Workshop

_numbers = itertools.count(1)
LATER = NOW + timedelta(hours=1)


def confirm(
    db: Session,
    shop: Workshop,
    machine: str,
    trainer: str,
    member: str,
    *,
    level: CertificationLevel = CertificationLevel.AUTONOMOUS,
    gateway: str | None = None,
) -> CertifyReply:
    request = CertifyRequest(
        request_id=f"c-{next(_numbers)}",
        machine=machine,
        trainer_badge=trainer,
        member_badge=member,
        level=level,
        sent_at_ms=to_ms(LATER),
        expires_at_ms=to_ms(LATER) + 2000,
    )
    reply = certify_at_machine(db, shop.site, gateway or shop.gateway, request, LATER)
    assert (reply.request_id, reply.machine, reply.member_badge) == (request.request_id, machine, member)
    return reply


def certifications_of(db: Session, member: int) -> list[Certification]:
    return list(
        db.scalars(
            sa.select(Certification).where(Certification.member_id == member).order_by(Certification.id)
        )
    )


def test_a_trainer_certifies_a_member_at_the_machine(db: Session, workshop: Workshop) -> None:
    reply = confirm(db, workshop, "sewing-1", workshop.trainer_badge, workshop.bob_badge)
    assert (reply.certified, reply.reason, reply.skills) == (True, Reason.GRANTED, ["industrial-sewing"])
    assert (reply.member_id, reply.member_name) == (workshop.bob, "Bob Durand")
    assert reply.message == "Bob Durand is now certified autonomous for Industrial sewing, by Tess Trainer."
    [certification] = certifications_of(db, workshop.bob)
    assert (
        certification.level,
        certification.granted_by_id,
        certification.granted_via,
        certification.granted_at,
    ) == (
        CertificationLevel.AUTONOMOUS,
        workshop.trainer,
        GrantedVia.MACHINE,
        LATER,
    )
    event = db.scalars(
        sa.select(CertificationEvent).where(CertificationEvent.certification_id == certification.id)
    ).one()
    assert (event.kind.value, event.actor_id, event.via, event.reason) == (
        "granted",
        workshop.trainer,
        "machine",
        "certified at the machine sewing-1",
    )
    entry = db.scalars(
        sa.select(AuditEntry).where(
            AuditEntry.action == "certification.grant", AuditEntry.subject_id == str(certification.id)
        )
    ).one()
    assert (entry.actor_id, entry.details["via"], entry.details["level"]) == (
        workshop.trainer,
        "machine",
        "autonomous",
    )


def test_every_skill_the_machine_requires_that_the_member_lacks(db: Session, workshop: Workshop) -> None:
    # overlocker-1 requires sewing (Alice: autonomous) and overlocker (Alice: supervised).
    reply = confirm(db, workshop, "overlocker-1", workshop.trainer_badge, workshop.alice_badge)
    assert (reply.certified, reply.skills) == (True, ["overlocker"])
    # Again: nothing new, and said so.
    again = confirm(db, workshop, "overlocker-1", workshop.trainer_badge, workshop.alice_badge)
    assert (again.certified, again.skills) == (True, [])
    assert "already holds what Juki MO-6714S requires" in again.message
    # At the supervised level, for someone holding neither: both, sewing first.
    supervised = confirm(
        db,
        workshop,
        "overlocker-1",
        workshop.trainer_badge,
        workshop.bob_badge,
        level=CertificationLevel.SUPERVISED,
    )
    assert supervised.skills == ["industrial-sewing", "overlocker"]
    assert [c.level for c in certifications_of(db, workshop.bob)] == [CertificationLevel.SUPERVISED] * 2


def test_prerequisites_granted_in_the_same_confirmation_or_missing(db: Session, workshop: Workshop) -> None:
    manage.set_skill_training(db, "overlocker", prerequisites=["industrial-sewing"])
    manage.add_skill(db, "serger-advanced", "Advanced serging", prerequisites=["fdm-printer"])
    manage.add_machine(
        db,
        "serger-2",
        "Serger",
        machine_class="overlocker",
        gateway=workshop.gateway,
        required_skills=["serger-advanced"],
    )
    manage.grant_certification(
        db, workshop.trainer, "serger-advanced", level=CertificationLevel.TRAINER, now=NOW
    )
    db.commit()
    # The machine requires the prerequisite too: granted first, then the skill.
    both = confirm(db, workshop, "overlocker-1", workshop.trainer_badge, workshop.bob_badge)
    assert both.skills == ["industrial-sewing", "overlocker"]
    # The prerequisite is not the machine's: it must be held first.
    missing = confirm(db, workshop, "serger-2", workshop.trainer_badge, workshop.bob_badge)
    assert (missing.certified, missing.reason) == (False, Reason.PREREQUISITE_MISSING)
    assert missing.message == "Bob Durand must first hold FDM printer."


def test_the_first_badge_must_be_a_trainer_for_every_skill(db: Session, workshop: Workshop) -> None:
    not_trainer = confirm(db, workshop, "sewing-1", workshop.alice_badge, workshop.bob_badge)
    assert (not_trainer.certified, not_trainer.reason) == (False, Reason.NOT_A_TRAINER)
    assert not_trainer.message == "Alice Martin is not a trainer for Industrial sewing."
    assert not_trainer.member_id is None
    unknown = confirm(db, workshop, "sewing-1", "FFFF0000", workshop.bob_badge)
    assert (unknown.reason, unknown.message) == (
        Reason.NOT_A_TRAINER,
        "The first badge is not an active trainer's.",
    )
    # A manager is not a trainer at the machine.
    manager = manage.add_member(db, "Manon", badge="3A4A0001", now=NOW)
    manage.set_member_roles(db, manager.id, manager=True)
    db.commit()
    assert confirm(db, workshop, "sewing-1", "3A4A0001", workshop.bob_badge).reason is Reason.NOT_A_TRAINER
    manage.set_member_status(db, workshop.trainer, MemberStatus.SUSPENDED)
    db.commit()
    assert (
        confirm(db, workshop, "sewing-1", workshop.trainer_badge, workshop.bob_badge).reason
        is Reason.NOT_A_TRAINER
    )
    assert certifications_of(db, workshop.bob) == []


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("FFFF0000", Reason.UNKNOWN_BADGE),
        ("DA7E0001", Reason.BADGE_DISABLED),
        ("C0C00001", Reason.MEMBER_INACTIVE),
        ("7E550001", Reason.SELF_CERTIFICATION),
    ],
)
def test_the_member_badge(db: Session, workshop: Workshop, member: str, reason: Reason) -> None:
    reply = confirm(db, workshop, "overlocker-1", workshop.trainer_badge, member)
    assert (reply.certified, reply.reason, reply.skills) == (False, reason, [])


def test_the_place(db: Session, workshop: Workshop) -> None:
    unknown_gateway = confirm(
        db, workshop, "sewing-1", workshop.trainer_badge, workshop.bob_badge, gateway="gw-x"
    )
    assert unknown_gateway.reason is Reason.UNKNOWN_GATEWAY
    assert (
        confirm(db, workshop, "printer-1", workshop.trainer_badge, workshop.bob_badge).reason
        is Reason.UNKNOWN_MACHINE
    )
    nothing = confirm(db, workshop, "free-1", workshop.trainer_badge, workshop.bob_badge)
    assert (nothing.reason, nothing.message) == (
        Reason.BAD_REQUEST,
        "Steam iron requires no skill: there is nothing to certify.",
    )
    assert certifications_of(db, workshop.bob) == []


def test_a_certified_member_is_let_in_next(db: Session, workshop: Workshop) -> None:
    from tests.server.test_supervision import tap  # noqa: PLC0415 - the same tap, at the same machine

    assert tap(db, workshop, "sewing-1", workshop.bob_badge, LATER).reason is Reason.NOT_CERTIFIED
    confirm(db, workshop, "sewing-1", workshop.trainer_badge, workshop.bob_badge)
    assert tap(db, workshop, "sewing-1", workshop.bob_badge, LATER).granted

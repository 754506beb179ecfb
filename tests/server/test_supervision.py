"""A member certified "supervised" uses a machine only right after a trainer for the skill badged on it;
and a trainer's reply says they are one."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from protocol.messages import AccessReply, AccessRequest, CertificationLevel, Reason
from server import workshop as manage
from server.access import decide
from server.clock import to_ms
from server.models import MemberStatus
from tests.server.conftest import NOW, Workshop

_numbers = itertools.count(1)
MINUTE = timedelta(minutes=1)


def tap(
    db: Session,
    shop: Workshop,
    machine: str,
    badge: str,
    now: datetime = NOW,
    *,
    supervisor: str | None = None,
    window: timedelta = timedelta(seconds=300),
) -> AccessReply:
    request = AccessRequest(
        request_id=f"r-{next(_numbers)}",
        machine=machine,
        badge=badge,
        sent_at_ms=to_ms(now),
        expires_at_ms=to_ms(now) + 500,
        supervisor_badge=supervisor,
    )
    return decide(db, shop.site, shop.gateway, request, now, supervision_window=window)


def test_supervised_without_a_trainer_is_refused(db: Session, workshop: Workshop) -> None:
    # Alice: industrial-sewing autonomous, overlocker supervised; overlocker-1 requires both.
    reply = tap(db, workshop, "overlocker-1", workshop.alice_badge)
    assert (reply.granted, reply.reason, reply.supervisor_id) == (False, Reason.SUPERVISION_REQUIRED, None)
    assert reply.message == (
        "You may use this machine for Overlocker under supervision only: a trainer must badge on it first."
    )
    assert reply.member_id == workshop.alice


def test_supervised_with_a_trainer_who_just_badged(db: Session, workshop: Workshop) -> None:
    trainer = tap(db, workshop, "overlocker-1", workshop.trainer_badge)
    assert (trainer.granted, trainer.trainer) == (True, True)
    reply = tap(
        db, workshop, "overlocker-1", workshop.alice_badge, NOW + MINUTE, supervisor=workshop.trainer_badge
    )
    assert (reply.granted, reply.reason, reply.supervisor_id) == (True, Reason.GRANTED, workshop.trainer)
    assert reply.message == "Welcome, Alice Martin, under supervision."
    assert reply.trainer is False
    # At the edge of the window it still holds; past it, not.
    at_edge = NOW + timedelta(seconds=300)
    assert tap(
        db, workshop, "overlocker-1", workshop.alice_badge, at_edge, supervisor=workshop.trainer_badge
    ).granted
    late = tap(
        db,
        workshop,
        "overlocker-1",
        workshop.alice_badge,
        at_edge + timedelta(seconds=1),
        supervisor=workshop.trainer_badge,
    )
    assert (late.granted, late.reason) == (False, Reason.SUPERVISION_REQUIRED)
    assert late.message == "Tess Trainer must badge on this machine first: supervision lasts 5 min after."


def test_the_window_is_a_setting(db: Session, workshop: Workshop) -> None:
    tap(db, workshop, "overlocker-1", workshop.trainer_badge)
    short = timedelta(seconds=30)
    late = tap(
        db,
        workshop,
        "overlocker-1",
        workshop.alice_badge,
        NOW + MINUTE,
        supervisor=workshop.trainer_badge,
        window=short,
    )
    assert late.reason is Reason.SUPERVISION_REQUIRED
    assert "supervision lasts 1 min" in late.message
    assert tap(
        db, workshop, "overlocker-1", workshop.alice_badge, NOW + MINUTE, supervisor=workshop.trainer_badge
    ).granted


def test_the_trainer_must_have_badged_on_the_same_machine(db: Session, workshop: Workshop) -> None:
    assert tap(db, workshop, "sewing-1", workshop.trainer_badge).granted
    reply = tap(
        db, workshop, "overlocker-1", workshop.alice_badge, NOW + MINUTE, supervisor=workshop.trainer_badge
    )
    assert reply.reason is Reason.SUPERVISION_REQUIRED
    # A refused tap of the trainer does not count either.
    manage.set_lockout(db, "overlocker-1", True, "needles")
    db.commit()
    assert (
        tap(db, workshop, "overlocker-1", workshop.trainer_badge, NOW + MINUTE).reason
        is Reason.MACHINE_LOCKED_OUT
    )
    manage.set_lockout(db, "overlocker-1", False)
    db.commit()
    assert tap(
        db,
        workshop,
        "overlocker-1",
        workshop.alice_badge,
        NOW + 2 * MINUTE,
        supervisor=workshop.trainer_badge,
    ).reason is (Reason.SUPERVISION_REQUIRED)


def test_a_supervisor_who_is_not_a_trainer_is_refused(db: Session, workshop: Workshop) -> None:
    # Bob may use the overlocker on his own, but trains nobody.
    manage.grant_certification(db, workshop.bob, "industrial-sewing", now=NOW)
    manage.grant_certification(db, workshop.bob, "overlocker", now=NOW)
    db.commit()
    assert tap(db, workshop, "overlocker-1", workshop.bob_badge).granted
    reply = tap(
        db, workshop, "overlocker-1", workshop.alice_badge, NOW + MINUTE, supervisor=workshop.bob_badge
    )
    assert (reply.granted, reply.reason) == (False, Reason.SUPERVISION_REQUIRED)
    assert reply.message == "Bob Durand is not a trainer for Overlocker: a trainer for it must supervise."


def test_a_trainer_for_another_skill_is_not_enough(db: Session, workshop: Workshop) -> None:
    trainer = manage.add_member(db, "Sam Sewing", badge="5A3E0001", now=NOW).id
    manage.grant_certification(db, trainer, "industrial-sewing", level=CertificationLevel.TRAINER, now=NOW)
    manage.grant_certification(db, trainer, "overlocker", now=NOW)
    db.commit()
    assert tap(db, workshop, "overlocker-1", "5A3E0001").trainer is False
    reply = tap(db, workshop, "overlocker-1", workshop.alice_badge, NOW + MINUTE, supervisor="5A3E0001")
    assert "Sam Sewing is not a trainer for Overlocker" in reply.message


def test_an_expired_or_suspended_trainer_supervises_nobody(db: Session, workshop: Workshop) -> None:
    assert tap(db, workshop, "overlocker-1", workshop.trainer_badge).granted
    manage.set_skill_training(db, "overlocker", disuse_months=1)
    db.commit()
    # A month and more later, Tess's overlocker certification lapsed by disuse (Alice's too:
    # she is refused for that first).
    later = NOW + timedelta(days=40)
    assert tap(
        db, workshop, "overlocker-1", workshop.alice_badge, later, supervisor=workshop.trainer_badge
    ).reason is (Reason.CERTIFICATION_EXPIRED)
    manage.set_skill_training(db, "overlocker", disuse_months=None)
    manage.set_member_status(db, workshop.trainer, MemberStatus.SUSPENDED)
    db.commit()
    reply = tap(
        db, workshop, "overlocker-1", workshop.alice_badge, NOW + MINUTE, supervisor=workshop.trainer_badge
    )
    assert reply.message == "Tess Trainer cannot supervise now: their badge or membership is not active."


@pytest.mark.parametrize("badge", ["FFFF0000", "A1B2C3D4"])
def test_an_unknown_or_own_supervisor_badge(db: Session, workshop: Workshop, badge: str) -> None:
    reply = tap(db, workshop, "overlocker-1", workshop.alice_badge, supervisor=badge)
    assert reply.reason is Reason.SUPERVISION_REQUIRED


def test_autonomous_members_need_no_supervisor_and_ignore_one(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.alice_badge, supervisor="FFFF0000")
    assert (reply.granted, reply.supervisor_id) == (True, None)


def test_the_other_refusals_come_first(db: Session, workshop: Workshop) -> None:
    manage.set_member_status(db, workshop.alice, MemberStatus.SUSPENDED)
    db.commit()
    assert tap(db, workshop, "overlocker-1", workshop.alice_badge).reason is Reason.MEMBER_INACTIVE


def test_the_trainer_flag(db: Session, workshop: Workshop) -> None:
    manager = manage.add_member(db, "Manon Manager", badge="3A4A0001", now=NOW)
    manage.set_member_roles(db, manager.id, manager=True)
    db.commit()
    assert tap(db, workshop, "sewing-1", workshop.trainer_badge).trainer is True
    assert tap(db, workshop, "overlocker-1", workshop.trainer_badge).trainer is True
    assert tap(db, workshop, "sewing-1", workshop.alice_badge).trainer is False
    # A machine that requires no skill makes nobody a trainer; nor does being a manager.
    assert tap(db, workshop, "free-1", workshop.trainer_badge).trainer is False
    assert tap(db, workshop, "free-1", "3A4A0001").trainer is False
    # Refusals never carry it.
    assert tap(db, workshop, "cutter-1", workshop.trainer_badge).trainer is False

"""Certifications expire by date and by disuse; the sweep records each expiry once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import AccessReply, AccessRequest, EventKind, Reason, UsageEvent
from server import workshop as manage
from server.access import decide
from server.clock import to_ms
from server.models import AuditEntry, Certification, CertificationEvent, CertificationLevel
from server.training.expiry import add_months, disuse_deadline, expiring, standing, sweep_expiries
from server.usage import ingest
from tests.server.conftest import NOW, Workshop

_numbers = itertools.count(1)


def tap(db: Session, shop: Workshop, machine: str, badge: str, now: datetime) -> AccessReply:
    request = AccessRequest(
        request_id=f"r-{next(_numbers)}",
        machine=machine,
        badge=badge,
        sent_at_ms=to_ms(now),
        expires_at_ms=to_ms(now),
    )
    return decide(db, shop.site, shop.gateway, request, now)


def use(db: Session, shop: Workshop, machine: str, badge: str, at: datetime) -> None:
    """A session on ``machine`` as its gateway reports it (only its start matters here)."""
    number = next(_numbers)
    event = UsageEvent(
        seq=number,
        session_id=f"s-{number}",
        machine=machine,
        kind=EventKind.SESSION_STARTED,
        at_ms=to_ms(at),
        badge=badge,
    )
    assert ingest(db, shop.gateway, event, at).ok


def sewing_of(db: Session, member: int) -> Certification:
    return db.scalars(
        sa.select(Certification)
        .join(Certification.skill)
        .where(Certification.member_id == member, Certification.skill.has(slug="industrial-sewing"))
        .order_by(Certification.id)
    ).first() or pytest.fail("no sewing certification")


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (datetime(2026, 1, 31, 9, tzinfo=UTC), 1, datetime(2026, 2, 28, 9, tzinfo=UTC)),
        (datetime(2024, 1, 31, 9, tzinfo=UTC), 1, datetime(2024, 2, 29, 9, tzinfo=UTC)),
        (datetime(2026, 3, 2, 10, tzinfo=UTC), 6, datetime(2026, 9, 2, 10, tzinfo=UTC)),
        (datetime(2026, 11, 15, tzinfo=UTC), 14, datetime(2028, 1, 15, tzinfo=UTC)),
    ],
)
def test_add_months(moment: datetime, months: int, expected: datetime) -> None:
    assert add_months(moment, months) == expected


def test_disuse_counts_from_the_later_of_the_grant_and_the_last_session() -> None:
    granted = datetime(2026, 3, 2, tzinfo=UTC)
    assert disuse_deadline(granted, None, None) is None
    assert disuse_deadline(granted, None, 6) == datetime(2026, 9, 2, tzinfo=UTC)
    assert disuse_deadline(granted, datetime(2026, 1, 1, tzinfo=UTC), 6) == datetime(2026, 9, 2, tzinfo=UTC)
    assert disuse_deadline(granted, datetime(2026, 5, 1, tzinfo=UTC), 6) == datetime(2026, 11, 1, tzinfo=UTC)
    soon = standing(
        granted_at=granted,
        expires_at=datetime(2026, 6, 1, tzinfo=UTC),
        lapsed_at=None,
        disuse_months=6,
        last_used=None,
        now=granted,
    )
    assert (soon.valid, soon.ends_at, soon.by_disuse) == (True, datetime(2026, 6, 1, tzinfo=UTC), False)


def test_expired_by_date_is_refused_with_the_date(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.erin_badge, NOW)
    assert (reply.granted, reply.reason) == (False, Reason.CERTIFICATION_EXPIRED)
    assert reply.message == "Your certification for Industrial sewing expired on 2026-03-01."


def test_expired_by_disuse_is_refused_and_says_so(db: Session, workshop: Workshop) -> None:
    manage.set_skill_training(db, "industrial-sewing", disuse_months=6)
    db.commit()
    deadline = datetime(2026, 9, 2, 10, tzinfo=UTC)  # six months after the grant, no session since
    assert tap(db, workshop, "sewing-1", workshop.alice_badge, deadline - timedelta(seconds=1)).granted
    reply = tap(db, workshop, "sewing-1", workshop.alice_badge, deadline)
    assert (reply.granted, reply.reason) == (False, Reason.CERTIFICATION_EXPIRED)
    assert reply.message == (
        "Your certification for Industrial sewing lapsed by disuse on 2026-09-02 (not used for 6 months)."
    )


def test_a_session_on_any_machine_requiring_the_skill_renews_it(db: Session, workshop: Workshop) -> None:
    manage.set_skill_training(db, "industrial-sewing", disuse_months=6)
    db.commit()
    # free-1 requires no skill: using it renews nothing.
    use(db, workshop, "free-1", workshop.alice_badge, NOW + timedelta(days=100))
    assert (
        tap(db, workshop, "sewing-1", workshop.alice_badge, add_months(NOW, 6)).reason
        is Reason.CERTIFICATION_EXPIRED
    )
    # overlocker-1 requires industrial-sewing too: a session there counts.
    used = NOW + timedelta(days=120)
    use(db, workshop, "overlocker-1", workshop.alice_badge, used)
    assert tap(db, workshop, "sewing-1", workshop.alice_badge, add_months(NOW, 6)).granted
    assert (
        tap(db, workshop, "sewing-1", workshop.alice_badge, add_months(used, 6)).reason
        is Reason.CERTIFICATION_EXPIRED
    )


def test_only_the_member_s_own_sessions_count(db: Session, workshop: Workshop) -> None:
    manage.set_skill_training(db, "industrial-sewing", disuse_months=6)
    db.commit()
    # The trainer sews every week; Alice never does: her certification lapses all the same.
    for week in range(30):
        use(db, workshop, "sewing-1", workshop.trainer_badge, NOW + timedelta(weeks=week))
    assert (
        tap(db, workshop, "sewing-1", workshop.alice_badge, add_months(NOW, 6)).reason
        is Reason.CERTIFICATION_EXPIRED
    )
    assert tap(db, workshop, "sewing-1", workshop.trainer_badge, add_months(NOW, 6)).granted
    lapsed = {(lapse.member_id, lapse.skill) for lapse in sweep_expiries(db, add_months(NOW, 6))}
    assert (workshop.alice, "industrial-sewing") in lapsed
    assert (workshop.trainer, "industrial-sewing") not in lapsed


def test_the_sweep_records_each_expiry_once(db: Session, workshop: Workshop) -> None:
    manage.set_skill_training(db, "overlocker", disuse_months=3)
    db.commit()
    later = NOW + timedelta(days=100)  # past Erin's date and the overlocker's three months unused
    lapses = sweep_expiries(db, later)
    found = {(lapse.member_id, lapse.skill): lapse for lapse in lapses}
    erin_sewing = found[(workshop.erin, "industrial-sewing")]
    assert (erin_sewing.at, erin_sewing.by_disuse, erin_sewing.reason) == (
        NOW - timedelta(days=1),
        False,
        "expiry date reached",
    )
    alice_overlocker = found[(workshop.alice, "overlocker")]
    assert (alice_overlocker.at, alice_overlocker.by_disuse) == (add_months(NOW, 3), True)
    assert alice_overlocker.reason == "not used for 3 months"
    assert (workshop.alice, "industrial-sewing") not in found  # no disuse period, no date

    assert sweep_expiries(db, later) == []
    assert sweep_expiries(db, later + timedelta(days=1)) == []
    expired = db.scalars(
        sa.select(CertificationEvent)
        .where(CertificationEvent.certification_id == alice_overlocker.certification_id)
        .order_by(CertificationEvent.id)
    ).all()
    assert [(event.kind.value, event.at, event.via, event.actor_id) for event in expired] == [
        ("granted", NOW, "seed", None),
        ("expired", add_months(NOW, 3), "sweep", None),
    ]
    entries = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "certification.expire")).all()
    assert len(entries) == len(lapses)
    certification = db.get(Certification, alice_overlocker.certification_id)
    assert certification is not None
    assert certification.lapsed_at == add_months(NOW, 3)


def test_an_expiry_is_final(db: Session, workshop: Workshop) -> None:
    manage.set_skill_training(db, "industrial-sewing", disuse_months=6)
    db.commit()
    sweep_expiries(db, add_months(NOW, 7))
    # A session recorded afterwards (say, under a certification granted meanwhile) does not revive it.
    use(db, workshop, "sewing-1", workshop.alice_badge, add_months(NOW, 7))
    reply = tap(db, workshop, "sewing-1", workshop.alice_badge, add_months(NOW, 7))
    assert reply.reason is Reason.CERTIFICATION_EXPIRED
    assert "lapsed by disuse on 2026-09-02" in reply.message
    # A new certification does.
    manage.grant_certification(db, workshop.alice, "industrial-sewing", now=add_months(NOW, 7))
    db.commit()
    assert tap(db, workshop, "sewing-1", workshop.alice_badge, add_months(NOW, 7)).granted


def test_revoked_certifications_are_not_swept(db: Session, workshop: Workshop) -> None:
    erins = sewing_of(db, workshop.erin)
    manage.revoke_certification(db, erins.id, reason="left", now=NOW)
    db.commit()
    assert [lapse.member_id for lapse in sweep_expiries(db, NOW + timedelta(days=1))] == []


def test_expiring_within_a_horizon(db: Session, workshop: Workshop) -> None:
    manage.grant_certification(db, workshop.bob, "fdm-printer", expires_at=NOW + timedelta(days=10), now=NOW)
    manage.set_skill_training(db, "overlocker", disuse_months=1)
    db.commit()
    soon = expiring(db, NOW, NOW + timedelta(days=31))  # March has 31 days
    assert [(item.member_id, item.skill, item.by_disuse) for item in soon] == [
        (workshop.bob, "fdm-printer", False),
        # overlocker lapses by disuse on 2026-04-02 for all three (granted at NOW, never used)
        *sorted(
            ((member, "overlocker", True) for member in (workshop.alice, workshop.erin, workshop.trainer)),
        ),
    ]
    assert soon[0].ends_at == NOW + timedelta(days=10)
    assert soon[1].ends_at == add_months(NOW, 1)
    only_printing = expiring(db, NOW, NOW + timedelta(days=31), {manage.get_skill(db, "fdm-printer").id})
    assert [item.skill for item in only_printing] == ["fdm-printer"]
    # Erin's expired sewing certification is not "expiring": it is gone already.
    assert all(item.skill != "industrial-sewing" for item in soon)
    assert expiring(db, NOW, NOW + timedelta(days=5)) == []


def test_levels_are_the_wire_levels() -> None:
    assert [level.value for level in CertificationLevel] == ["supervised", "autonomous", "trainer"]

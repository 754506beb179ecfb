"""Every reason a badge tap is granted or refused, in the order the rules apply."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import AccessReply, AccessRequest, Reason
from server import workshop as manage
from server.access import decide
from server.clock import to_ms
from server.models import AccessDecision, Certification, Machine, MemberStatus, SecondFactorConfirmation
from tests.server.conftest import NOW, Workshop


def tap(
    db: Session,
    shop: Workshop,
    machine: str,
    badge: str,
    *,
    gateway: str | None = None,
    site: str | None = None,
) -> AccessReply:
    request = AccessRequest(
        request_id=f"req-{machine}-{badge}",
        machine=machine,
        badge=badge,
        sent_at_ms=to_ms(NOW),
        expires_at_ms=to_ms(NOW) + 2000,
    )
    return decide(db, site or shop.site, gateway or shop.gateway, request, NOW)


def test_granted_to_a_certified_member(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.alice_badge)
    assert reply.granted
    assert reply.reason is Reason.GRANTED
    assert reply.member_id == workshop.alice
    assert reply.member_name == "Alice Martin"
    assert reply.message == "Welcome, Alice Martin."
    assert reply.request_id == "req-sewing-1-A1B2C3D4"
    assert reply.machine == "sewing-1"


def test_granted_on_a_machine_that_needs_no_skill(db: Session, workshop: Workshop) -> None:
    assert tap(db, workshop, "free-1", workshop.bob_badge).reason is Reason.GRANTED


def test_granted_with_every_required_skill(db: Session, workshop: Workshop) -> None:
    # overlocker-1 needs two skills: Erin's overlocker certification does not make up for her sewing one.
    assert tap(db, workshop, "overlocker-1", workshop.erin_badge).reason is Reason.CERTIFICATION_EXPIRED
    manage.grant_certification(db, workshop.erin, "industrial-sewing", now=NOW)
    db.commit()
    assert tap(db, workshop, "overlocker-1", workshop.erin_badge).granted


def test_badge_uid_is_matched_whatever_its_case(db: Session, workshop: Workshop) -> None:
    assert tap(db, workshop, "sewing-1", workshop.alice_badge.lower()).granted


def test_unknown_gateway(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.alice_badge, gateway="gw-nowhere")
    assert (reply.granted, reply.reason) == (False, Reason.UNKNOWN_GATEWAY)
    assert reply.member_id is None
    assert "gw-nowhere" in reply.message


def test_a_gateway_of_another_site_is_unknown_here(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.alice_badge, site="another-site")
    assert reply.reason is Reason.UNKNOWN_GATEWAY


def test_unknown_machine(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "loom-9", workshop.alice_badge)
    assert (reply.granted, reply.reason) == (False, Reason.UNKNOWN_MACHINE)


def test_a_machine_of_another_gateway_is_unknown_on_this_one(db: Session, workshop: Workshop) -> None:
    assert tap(db, workshop, "printer-1", workshop.alice_badge).reason is Reason.UNKNOWN_MACHINE


def test_unknown_badge(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", "FFFF0000")
    assert (reply.granted, reply.reason, reply.member_id) == (False, Reason.UNKNOWN_BADGE, None)


def test_disabled_badge(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.dave_badge)
    assert (reply.granted, reply.reason) == (False, Reason.BADGE_DISABLED)
    assert reply.member_id == workshop.dave
    assert reply.member_name == "Dave Moreau"


def test_suspended_member(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.carol_badge)
    assert (reply.granted, reply.reason) == (False, Reason.MEMBER_INACTIVE)
    assert reply.member_id == workshop.carol


def test_machine_locked_out_says_why(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "cutter-1", workshop.alice_badge)
    assert (reply.granted, reply.reason) == (False, Reason.MACHINE_LOCKED_OUT)
    assert reply.message == "Band knife is locked out: blade being replaced"


def test_lifting_a_lockout_lets_members_in_again(db: Session, workshop: Workshop) -> None:
    manage.set_lockout(db, "cutter-1", False)
    db.commit()
    assert tap(db, workshop, "cutter-1", workshop.alice_badge).granted


def test_not_certified(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.bob_badge)
    assert (reply.granted, reply.reason) == (False, Reason.NOT_CERTIFIED)
    assert reply.message == "You are not certified for Industrial sewing."
    assert reply.member_name == "Bob Durand"


def test_certification_expired(db: Session, workshop: Workshop) -> None:
    reply = tap(db, workshop, "sewing-1", workshop.erin_badge)
    assert (reply.granted, reply.reason) == (False, Reason.CERTIFICATION_EXPIRED)
    assert (
        reply.message
        == f"Your certification for Industrial sewing expired on {NOW - timedelta(days=1):%Y-%m-%d}."
    )


def test_an_expiry_in_the_future_is_valid_and_the_expiry_instant_is_not(
    db: Session, workshop: Workshop
) -> None:
    manage.grant_certification(db, workshop.bob, "industrial-sewing", expires_at=NOW + timedelta(seconds=1))
    db.commit()
    assert tap(db, workshop, "sewing-1", workshop.bob_badge).granted
    manage.grant_certification(db, workshop.bob, "fdm-printer", expires_at=NOW)
    manage.add_machine(
        db,
        "printer-2",
        "Bambu",
        machine_class="fdm-printer",
        gateway=workshop.gateway,
        required_skills=["fdm-printer"],
    )
    db.commit()
    assert tap(db, workshop, "printer-2", workshop.bob_badge).reason is Reason.CERTIFICATION_EXPIRED


def test_a_missing_skill_outranks_an_expired_one(db: Session, workshop: Workshop) -> None:
    manage.grant_certification(db, workshop.bob, "overlocker", expires_at=NOW - timedelta(days=3))
    db.commit()
    # overlocker-1 needs industrial-sewing (bob: none) and overlocker (bob: expired).
    reply = tap(db, workshop, "overlocker-1", workshop.bob_badge)
    assert reply.reason is Reason.NOT_CERTIFIED
    assert reply.message == "You are not certified for Industrial sewing."


def test_a_valid_certification_beside_an_expired_one_is_enough(db: Session, workshop: Workshop) -> None:
    manage.grant_certification(db, workshop.erin, "industrial-sewing", now=NOW)
    db.commit()
    assert tap(db, workshop, "sewing-1", workshop.erin_badge).granted


def test_a_revoked_certification_counts_as_none(db: Session, workshop: Workshop) -> None:
    assert tap(db, workshop, "sewing-1", workshop.alice_badge).granted
    certification = db.scalars(
        sa.select(Certification).where(Certification.member_id == workshop.alice)
    ).first()
    assert certification is not None
    manage.revoke_certification(db, certification.id, reason="unsafe use", now=NOW)
    db.commit()
    assert tap(db, workshop, "sewing-1", workshop.alice_badge).reason is Reason.NOT_CERTIFIED


def test_revoked_expired_certifications_do_not_make_it_an_expiry(db: Session, workshop: Workshop) -> None:
    certification = manage.grant_certification(
        db, workshop.bob, "industrial-sewing", expires_at=NOW - timedelta(days=1)
    )
    manage.revoke_certification(db, certification.id, now=NOW)
    db.commit()
    assert tap(db, workshop, "sewing-1", workshop.bob_badge).reason is Reason.NOT_CERTIFIED


@pytest.mark.parametrize(
    ("badge", "machine", "reason"),
    [
        # A disabled badge is told first, even on a locked-out machine it is not certified for.
        ("DA7E0001", "cutter-1", Reason.BADGE_DISABLED),
        # A suspended member hears of the suspension before the lockout.
        ("C0C00001", "cutter-1", Reason.MEMBER_INACTIVE),
        # A lockout is said before a missing certification: training would not help today.
        ("B0B00001", "cutter-1", Reason.MACHINE_LOCKED_OUT),
        # An unknown machine is said before an unknown badge.
        ("FFFF0000", "loom-9", Reason.UNKNOWN_MACHINE),
    ],
)
def test_the_first_failing_rule_is_the_answer(
    db: Session, workshop: Workshop, badge: str, machine: str, reason: Reason
) -> None:
    # cutter-1 is locked out; make it need a skill nobody here holds, too.
    cutter = manage.get_machine(db, "cutter-1")
    cutter.required_skills.append(manage.get_skill(db, "fdm-printer"))
    db.commit()
    assert tap(db, workshop, machine, badge).reason is reason


def test_suspending_a_member_takes_effect_at_the_next_tap(db: Session, workshop: Workshop) -> None:
    assert tap(db, workshop, "sewing-1", workshop.alice_badge).granted
    manage.set_member_status(db, workshop.alice, MemberStatus.SUSPENDED)
    db.commit()
    assert tap(db, workshop, "sewing-1", workshop.alice_badge).reason is Reason.MEMBER_INACTIVE


def test_every_decision_is_logged(db: Session, workshop: Workshop) -> None:
    tap(db, workshop, "sewing-1", workshop.alice_badge)
    tap(db, workshop, "sewing-1", workshop.bob_badge)
    tap(db, workshop, "sewing-1", "FFFF0000", gateway="gw-nowhere")
    rows = db.scalars(sa.select(AccessDecision).order_by(AccessDecision.id)).all()
    assert [(row.granted, row.reason, row.member_id) for row in rows] == [
        (True, "granted", workshop.alice),
        (False, "not_certified", workshop.bob),
        (False, "unknown_gateway", None),
    ]
    first = rows[0]
    assert (first.at, first.gateway_slug, first.machine_slug, first.badge_uid) == (
        NOW,
        "gw-atelier",
        "sewing-1",
        "A1B2C3D4",
    )
    assert first.request_id == "req-sewing-1-A1B2C3D4"
    assert rows[1].message == "You are not certified for Industrial sewing."
    assert rows[2].gateway_slug == "gw-nowhere"


def test_a_long_name_and_reason_fit_the_reply(db: Session, workshop: Workshop) -> None:
    member = manage.add_member(db, "N" * 120, badge="12345678")
    manage.set_lockout(db, "free-1", True, "R" * 200)
    db.commit()
    reply = tap(db, workshop, "free-1", "12345678")
    assert reply.member_id == member.id
    assert reply.member_name == "N" * 120
    assert len(reply.message) == 200
    assert reply.message.endswith("…")


def confirm(db: Session, shop: Workshop, machine: str, member: int, at: datetime) -> None:
    """What the member's "I am at this machine" in the web app records."""
    machine_id = db.scalar(sa.select(Machine.id).where(Machine.slug == machine))
    assert machine_id is not None
    db.add(SecondFactorConfirmation(member_id=member, machine_id=machine_id, confirmed_at=at))
    db.commit()


def tap_at(db: Session, shop: Workshop, machine: str, badge: str, at: datetime) -> AccessReply:
    request = AccessRequest(
        request_id=f"req-{machine}-{badge}-{to_ms(at)}",
        machine=machine,
        badge=badge,
        sent_at_ms=to_ms(at),
        expires_at_ms=to_ms(at) + 2000,
    )
    return decide(db, shop.site, shop.gateway, request, at, second_factor_window=timedelta(seconds=120))


@pytest.fixture
def second_factor(db: Session, workshop: Workshop) -> Workshop:
    manage.set_second_factor(db, "sewing-1", True, now=NOW)
    db.commit()
    return workshop


def test_a_second_factor_machine_refuses_the_badge_alone(db: Session, second_factor: Workshop) -> None:
    shop = second_factor
    reply = tap_at(db, shop, "sewing-1", shop.alice_badge, NOW)
    assert (reply.granted, reply.reason) == (False, Reason.SECOND_FACTOR_REQUIRED)
    assert reply.member_id == shop.alice
    assert "web app" in reply.message
    # Other machines still take the badge alone.
    assert tap_at(db, shop, "free-1", shop.alice_badge, NOW).granted


def test_a_confirmation_within_the_window_lets_the_badge_in_once(
    db: Session, second_factor: Workshop
) -> None:
    shop = second_factor
    confirm(db, shop, "sewing-1", shop.alice, NOW)
    at = NOW + timedelta(seconds=120)
    assert tap_at(db, shop, "sewing-1", shop.alice_badge, at).granted
    used = db.scalar(sa.select(SecondFactorConfirmation.used_at))
    assert used == at
    # Used once: the next tap needs a new confirmation.
    again = tap_at(db, shop, "sewing-1", shop.alice_badge, at + timedelta(seconds=1))
    assert again.reason is Reason.SECOND_FACTOR_REQUIRED


def test_a_confirmation_is_for_its_member_and_machine_only(db: Session, second_factor: Workshop) -> None:
    shop = second_factor
    confirm(db, shop, "sewing-1", shop.bob, NOW)
    confirm(db, shop, "free-1", shop.alice, NOW)
    assert tap_at(db, shop, "sewing-1", shop.alice_badge, NOW).reason is Reason.SECOND_FACTOR_REQUIRED


def test_a_confirmation_past_the_window_is_refused(db: Session, second_factor: Workshop) -> None:
    shop = second_factor
    confirm(db, shop, "sewing-1", shop.alice, NOW)
    late = tap_at(db, shop, "sewing-1", shop.alice_badge, NOW + timedelta(seconds=121))
    assert late.reason is Reason.SECOND_FACTOR_REQUIRED
    # Nor does a confirmation dated after the tap count.
    assert tap_at(db, shop, "sewing-1", shop.alice_badge, NOW - timedelta(seconds=1)).granted is False


def test_a_refusal_for_another_reason_keeps_the_confirmation(db: Session, second_factor: Workshop) -> None:
    shop = second_factor
    confirm(db, shop, "sewing-1", shop.alice, NOW)
    manage.set_lockout(db, "sewing-1", True, "needle broken", now=NOW)
    db.commit()
    assert tap_at(db, shop, "sewing-1", shop.alice_badge, NOW).reason is Reason.MACHINE_LOCKED_OUT
    manage.set_lockout(db, "sewing-1", False, now=NOW)
    db.commit()
    assert tap_at(db, shop, "sewing-1", shop.alice_badge, NOW + timedelta(seconds=1)).granted

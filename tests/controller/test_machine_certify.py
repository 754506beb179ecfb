"""The interlock certifying at the machine: trainer, refused member, then the confirming tap or button."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.actions import Action, SendCertify, SendRequest, Show, SwitchOff
from controller.hardware.interfaces import Signal
from protocol.messages import CertificationLevel, CertifyRequest, Reason
from tests.controller.interlock import (
    BADGE,
    LOCKED,
    OTHER,
    RULES,
    TRAINER,
    UNLOCKED,
    Bench,
    events,
    only_event,
    wall,
)


def certifications(actions: list[Action]) -> list[CertifyRequest]:
    return [a.request for a in actions if isinstance(a, SendCertify)]


def refused_trainee(bench: Bench, reason: Reason = Reason.NOT_CERTIFIED) -> None:
    """The trainer is in at 100; the member taps at 110 and is refused for lack of training."""
    bench.trainer_in()
    bench.at(110).badge(BADGE)
    bench.at(110.05).reply(granted=False, reason=reason)


@pytest.mark.parametrize(
    "reason", [Reason.NOT_CERTIFIED, Reason.CERTIFICATION_EXPIRED, Reason.SUPERVISION_REQUIRED]
)
def test_a_member_refused_for_lack_of_training_under_a_trainer_becomes_the_trainee(
    bench: Bench, reason: Reason
) -> None:
    refused_trainee(bench, reason)

    trainee = bench.machine.supervision.trainee(110.05)
    assert trainee is not None
    assert (trainee.badge, trainee.trainer_badge, trainee.until) == (BADGE, TRAINER, 410.05)


@pytest.mark.parametrize(
    "reason",
    [Reason.UNKNOWN_BADGE, Reason.MEMBER_INACTIVE, Reason.BADGE_DISABLED, Reason.INSUFFICIENT_BALANCE],
)
def test_other_refusals_make_no_trainee(bench: Bench, reason: Reason) -> None:
    refused_trainee(bench, reason)

    assert bench.machine.supervision.trainee(111) is None
    assert bench.at(111).badge(TRAINER)[0] == SwitchOff(), "the trainer's tap is a badge-out"


def test_a_refusal_without_a_trainer_makes_no_trainee(bench: Bench) -> None:
    bench.badge(BADGE)
    bench.at(100.05).reply(granted=False, reason=Reason.NOT_CERTIFIED)

    assert bench.machine.supervision.trainee(101) is None


def test_the_trainers_confirming_tap_asks_the_server_to_certify(bench: Bench) -> None:
    refused_trainee(bench)
    session = bench.machine.session_id
    actions = bench.at(112).badge(TRAINER)  # while the refusal is still shown

    (request,) = certifications(actions)
    assert actions == [SendCertify(request), Show(Signal.AUTHORISING)]
    assert (request.trainer_badge, request.member_badge, request.machine) == (TRAINER, BADGE, "sew-1")
    assert request.level is CertificationLevel.AUTONOMOUS
    assert (request.sent_at_ms, request.expires_at_ms) == (wall(112), wall(112) + 500)
    assert bench.machine.session_id == session, "the confirming tap is not a badge-out"
    assert bench.state is UNLOCKED
    assert bench.machine.certifying


def test_a_certification_granted_is_shown_and_kept(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)
    actions = bench.at(120.05).certify_reply()

    assert actions == [Show(Signal.GRANTED, Reason.GRANTED)]
    outcome = bench.machine.supervision.last_outcome
    assert outcome is not None
    assert (outcome.certified, outcome.reason, outcome.member_badge, outcome.trainer_badge) == (
        True,
        Reason.GRANTED,
        BADGE,
        TRAINER,
    )
    assert (outcome.member_id, outcome.member_name, outcome.skills) == (7, "Camille", ("industrial-sewing",))
    assert outcome.level is CertificationLevel.AUTONOMOUS
    assert outcome.at_ms == wall(120.05)
    assert not bench.machine.certifying
    assert bench.machine.supervision.trainee(121) is None, "one confirmation, one certification"
    assert bench.at(123.05).tick() == [Show(Signal.GRANTED)], "then the lights show the trainer's session"
    assert bench.at(124).badge(TRAINER)[0] == SwitchOff(), "the trainer's next tap is a badge-out again"


def test_the_certified_member_is_then_handed_the_machine(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)
    bench.at(120.05).certify_reply()
    actions = bench.at(125).badge(BADGE)

    assert [a.request.supervisor_badge for a in actions if isinstance(a, SendRequest)] == [TRAINER]


@pytest.mark.parametrize(
    "reason",
    [Reason.NOT_A_TRAINER, Reason.SELF_CERTIFICATION, Reason.PREREQUISITE_MISSING, Reason.MEMBER_INACTIVE],
)
def test_a_certification_refused_shows_the_reason(bench: Bench, reason: Reason) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)
    actions = bench.at(120.05).certify_reply(certified=False, reason=reason)

    assert actions == [Show(Signal.DENIED, reason)]
    outcome = bench.machine.supervision.last_outcome
    assert outcome is not None
    assert (outcome.certified, outcome.reason) == (False, reason)
    assert bench.state is UNLOCKED
    assert events(actions) == []


def test_a_certification_unanswered_in_time_is_refused_as_server_unreachable(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)

    assert bench.at(120.499).tick() == []
    assert bench.at(120.5).tick() == [Show(Signal.DENIED, Reason.SERVER_UNREACHABLE)]
    outcome = bench.machine.supervision.last_outcome
    assert outcome is not None
    assert (outcome.certified, outcome.reason, outcome.member_badge) == (
        False,
        Reason.SERVER_UNREACHABLE,
        BADGE,
    )
    assert not bench.machine.certifying
    assert bench.at(121).certify_reply() == [], "the late answer is ignored"
    assert bench.machine.supervision.last_outcome == outcome


def test_a_late_answer_is_ignored_even_without_a_tick_in_between(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)
    actions = bench.at(121).certify_reply()

    assert actions == [Show(Signal.DENIED, Reason.SERVER_UNREACHABLE)]
    outcome = bench.machine.supervision.last_outcome
    assert outcome is not None
    assert not outcome.certified


def test_duplicate_and_foreign_certify_replies_are_ignored(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)

    assert bench.at(120.01).certify_reply(request_id="someone-else") == []
    assert bench.machine.certifying
    assert bench.at(120.02).certify_reply() == [Show(Signal.GRANTED, Reason.GRANTED)]
    first = bench.machine.supervision.last_outcome
    assert bench.at(120.03).certify_reply() == [], "a duplicate (QoS 1, two server workers)"
    assert bench.at(120.04).certify_reply(certified=False, reason=Reason.NOT_A_TRAINER) == []
    assert bench.machine.supervision.last_outcome == first


def test_a_certify_reply_with_nothing_pending_is_ignored(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)
    bench.at(120.05).certify_reply()
    bench.machine.supervision.last_outcome = None

    assert bench.at(121).certify_reply() == []
    assert bench.machine.supervision.last_outcome is None


def test_taps_while_certifying_are_ignored(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)

    assert bench.at(120.1).badge(TRAINER) == []
    assert bench.at(120.1).badge(BADGE) == []
    assert bench.at(120.1).press() == []
    assert len(bench.certify_requests) == 1
    assert bench.state is UNLOCKED


def test_the_button_confirms_a_pending_certification(bench: Bench) -> None:
    refused_trainee(bench)
    actions = bench.at(120).press()

    (request,) = certifications(actions)
    assert (request.trainer_badge, request.member_badge) == (TRAINER, BADGE)
    assert Show(Signal.AUTHORISING) in actions
    assert bench.at(120.05).certify_reply() == [Show(Signal.GRANTED, Reason.GRANTED)]


def test_the_button_does_nothing_else(bench: Bench) -> None:
    assert bench.press() == []
    bench.trainer_in()
    assert bench.at(110).press() == [], "a trainer, but no trainee"
    assert bench.state is UNLOCKED
    bench.at(120).badge(BADGE)
    assert bench.at(120.1).press() == [], "while the member's request is pending"


def test_only_the_trainer_who_supervised_confirms(bench: Bench) -> None:
    refused_trainee(bench)
    actions = bench.at(120).badge(OTHER)

    assert certifications(actions) == []
    assert [a.request.supervisor_badge for a in actions if isinstance(a, SendRequest)] == [TRAINER], (
        "another badge is asked about as usual"
    )


def test_the_trainee_is_forgotten_after_the_window(bench: Bench) -> None:
    bench = Bench(replace(RULES, idle_timeout_s=3600))
    refused_trainee(bench)

    assert bench.machine.supervision.trainee(410.05) is not None
    actions = bench.at(410.1).badge(TRAINER)
    assert certifications(actions) == []
    assert only_event(actions).end_reason == "badge_out"


def test_the_level_asked_for_is_the_machines(bench: Bench) -> None:
    bench = Bench(replace(RULES, certify_level=CertificationLevel.SUPERVISED))
    refused_trainee(bench)

    (request,) = certifications(bench.at(120).badge(TRAINER))
    assert request.level is CertificationLevel.SUPERVISED


def test_certifying_on_the_locked_machine_after_the_trainer_left(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(105).badge(TRAINER)  # the trainer badges out, leaving the machine to the beginner
    bench.at(110).badge(BADGE)
    bench.at(110.05).reply(granted=False, reason=Reason.NOT_CERTIFIED)
    assert bench.state is LOCKED
    actions = bench.at(120).badge(TRAINER)

    (request,) = certifications(actions)
    assert (request.trainer_badge, request.member_badge) == (TRAINER, BADGE)
    assert bench.state is LOCKED, "a certification powers nothing"
    assert bench.at(120.05).certify_reply() == [Show(Signal.GRANTED, Reason.GRANTED)]
    assert bench.at(123.05).tick() == [Show(Signal.LOCKED)]


def test_a_newer_refusal_replaces_the_trainee(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(115).badge(OTHER)
    bench.at(115.05).reply(granted=False, reason=Reason.CERTIFICATION_EXPIRED)

    (request,) = certifications(bench.at(120).badge(TRAINER))
    assert request.member_badge == OTHER


def test_a_lock_command_forgets_the_trainee_but_not_a_certification_in_flight(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(115).lock()
    assert bench.machine.supervision.trainee(115) is None

    refused_trainee(bench := Bench())
    bench.at(120).badge(TRAINER)
    bench.at(120.1).lock()
    assert bench.at(120.2).certify_reply() == [Show(Signal.GRANTED, Reason.GRANTED)]


def test_a_gateway_stop_drops_a_certification_in_flight(bench: Bench) -> None:
    refused_trainee(bench)
    bench.at(120).badge(TRAINER)
    bench.at(120.1).shutdown()

    assert not bench.machine.certifying
    assert bench.at(120.2).certify_reply() == []

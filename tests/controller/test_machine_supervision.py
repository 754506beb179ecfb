"""The interlock under supervision: a trainer's window, hand-overs, taps while running.

The bench's rules: supervision window 300 s (the default), request timeout
0.5 s, refusals shown for 3 s, idle timeout 60 s (an hour where a test needs
the trainer's session to outlive the window). The trainer is granted at
t = 100.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.actions import Action, EndReason, PublishState, SendRequest, Show, SwitchOff, SwitchOn
from controller.hardware.interfaces import Signal
from protocol.messages import AccessRequest, EventKind, Reason
from tests.controller.interlock import (
    AUTHORISING,
    BADGE,
    LOCKED,
    OTHER,
    RULES,
    RUNNING,
    TRAINER,
    TRAINER_ID,
    UNLOCKED,
    Bench,
    durations,
    events,
    only_event,
    shows,
)

LONG = replace(RULES, idle_timeout_s=3600)
"""Rules whose idle timeout outlives the supervision window."""


def requests(actions: list[Action]) -> list[AccessRequest]:
    return [a.request for a in actions if isinstance(a, SendRequest)]


def switched(actions: list[Action]) -> list[Action]:
    return [a for a in actions if isinstance(a, SwitchOn | SwitchOff)]


# The supervision window.


def test_a_trainer_grant_is_remembered_for_the_window(bench: Bench) -> None:
    bench.trainer_in()

    trainer = bench.machine.supervision.trainer(100)
    assert trainer is not None
    assert (trainer.badge, trainer.until) == (TRAINER, 400)
    assert bench.machine.supervision.trainer(400) is not None, "the window's last instant is in it"
    assert bench.machine.supervision.trainer(400.001) is None


def test_a_grant_without_trainer_is_no_supervision(bench: Bench) -> None:
    bench.granted()

    assert bench.machine.supervision.trainer(100) is None
    assert bench.at(110).badge(OTHER) == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)]


def test_a_member_tapped_within_the_window_is_asked_about_with_the_trainer_as_supervisor(
    bench: Bench,
) -> None:
    bench.trainer_in()
    actions = bench.at(150).badge(BADGE)

    (request,) = requests(actions)
    assert (request.badge, request.supervisor_badge) == (BADGE, TRAINER)
    assert request.expires_at_ms == request.sent_at_ms + 500
    assert actions == [SendRequest(request), Show(Signal.AUTHORISING)], (
        "the trainer's session, its state and its power stay as they are"
    )
    assert bench.state is UNLOCKED


def test_at_the_end_of_the_window_a_tap_is_still_supervised_and_after_it_refused_locally() -> None:
    bench = Bench(LONG)
    bench.trainer_in()

    assert requests(bench.at(400).badge(BADGE))[0].supervisor_badge == TRAINER
    bench.at(400.5).tick()  # no answer: the trainer's session goes on
    assert bench.state is UNLOCKED
    assert bench.at(400.6).badge(BADGE) == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)]


def test_a_window_of_zero_turns_supervision_off() -> None:
    bench = Bench(replace(RULES, supervision_window_s=0))
    bench.trainer_in()

    assert bench.machine.supervision.trainer(100) is None
    assert bench.at(101).badge(BADGE) == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)]


def test_the_trainers_own_tap_without_a_trainee_is_a_badge_out(bench: Bench) -> None:
    bench.trainer_in()
    actions = bench.at(120).badge(TRAINER)

    assert actions[0] == SwitchOff()
    assert only_event(actions).end_reason == "badge_out"
    assert requests(actions) == []
    assert bench.state is LOCKED


# The hand-over.


def test_a_granted_hand_over_keeps_the_power_on_and_records_the_supervisor(bench: Bench) -> None:
    bench.trainer_in()
    trainer_session = bench.machine.session_id
    bench.at(130).badge(BADGE)
    actions = bench.at(130.05).reply(member_id=7, supervisor_id=TRAINER_ID)

    assert switched(actions) == [], "the relay is neither cut nor switched again"
    ended, started = events(actions)
    assert (ended.kind, ended.session_id, ended.end_reason) == (
        EventKind.SESSION_ENDED,
        trainer_session,
        EndReason.HANDOVER.value,
    )
    assert ended.end_reason == "handover"
    assert (ended.badge, ended.member_id, ended.supervisor_id) == (TRAINER, TRAINER_ID, None)
    assert durations(ended) == (30_050, 0, 30_050)
    assert started.kind is EventKind.SESSION_STARTED
    assert started.session_id == bench.machine.session_id != trainer_session
    assert (started.badge, started.member_id, started.supervisor_id) == (BADGE, 7, TRAINER_ID)
    assert started.at_ms == ended.at_ms
    assert durations(started) == (0, 0, 0)
    assert bench.state is UNLOCKED
    assert bench.machine.supervisor_id == TRAINER_ID
    (state,) = [a.state for a in actions if isinstance(a, PublishState)]
    assert (state.state, state.session_id, state.member_id) == (UNLOCKED, started.session_id, 7)
    assert Show(Signal.GRANTED) in actions


def test_every_event_of_a_supervised_session_names_its_supervisor(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(130).badge(BADGE)
    bench.at(130).reply(supervisor_id=TRAINER_ID)
    bench.at(140).current(2.0)
    running = only_event(bench.at(142).current(2.0))
    assert bench.at(150).badge(BADGE) == [], "badge-out while running waits for idle"
    bench.at(160).current(0.0)
    stopped, ended = events(bench.at(163).current(0.0))

    assert [e.supervisor_id for e in (running, stopped, ended)] == [TRAINER_ID] * 3
    assert ended.end_reason == "badge_out"
    assert durations(ended) == (33_000, 20_000, 13_000), "counted from the hand-over"


def test_the_idle_timeout_of_the_member_counts_from_the_hand_over(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(150).badge(BADGE)
    bench.at(150).reply(supervisor_id=TRAINER_ID)

    assert bench.at(209.9).tick() == []
    ended = only_event(bench.at(210).tick())
    assert (ended.end_reason, ended.member_id) == ("idle_timeout", 7)


@pytest.mark.parametrize(
    "reason",
    [
        Reason.NOT_CERTIFIED,
        Reason.CERTIFICATION_EXPIRED,
        Reason.SUPERVISION_REQUIRED,
        Reason.MEMBER_INACTIVE,
        Reason.INSUFFICIENT_BALANCE,
    ],
)
def test_a_refused_hand_over_leaves_the_trainers_session_as_it_was(bench: Bench, reason: Reason) -> None:
    bench.trainer_in()
    session = bench.machine.session_id
    bench.at(130).badge(BADGE)
    actions = bench.at(130.05).reply(granted=False, reason=reason)

    assert actions == [Show(Signal.DENIED, reason)], "no event, no power change, no state change"
    assert bench.machine.session_id == session
    assert bench.state is UNLOCKED
    assert bench.at(133.05).tick() == [Show(Signal.GRANTED)], "then the lights show the session again"


def test_a_hand_over_unanswered_in_time_leaves_the_trainers_session(bench: Bench) -> None:
    bench.trainer_in()
    session = bench.machine.session_id
    bench.at(130).badge(BADGE)
    late = bench.last_request_id

    assert bench.at(130.4).tick() == []
    assert bench.at(130.5).tick() == [Show(Signal.DENIED, Reason.SERVER_UNREACHABLE)]
    assert bench.machine.session_id == session
    assert bench.at(130.6).reply(request_id=late, supervisor_id=TRAINER_ID) == [], "late: ignored"
    assert bench.machine.session_id == session


def test_taps_while_a_hand_over_is_asked_about_are_ignored(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(130).badge(BADGE)

    assert bench.at(130.1).badge(BADGE) == []
    assert bench.at(130.1).badge(TRAINER) == [], "not even the trainer's badge-out: the decision comes first"
    assert bench.at(130.1).badge(OTHER) == []
    assert len(bench.requests) == 2


def test_a_second_trainer_taking_over_becomes_the_trainer_present(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(130).badge(OTHER)
    bench.at(130).reply(trainer=True, member_id=9)

    trainer = bench.machine.supervision.trainer(130)
    assert trainer is not None
    assert (trainer.badge, trainer.until) == (OTHER, 430)
    assert requests(bench.at(140).badge(BADGE))[0].supervisor_badge == OTHER


def test_no_hand_over_from_a_supervised_members_session(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(130).badge(BADGE)
    bench.at(130).reply(supervisor_id=TRAINER_ID)

    assert bench.at(140).badge(OTHER) == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)], (
        "only the trainer's own session is handed over"
    )


# Never while running.


def test_a_tap_while_the_trainers_machine_runs_is_refused_locally(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(110).current(2.0)
    bench.at(112).current(2.0)
    assert bench.state is RUNNING

    assert bench.at(120).badge(BADGE) == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)]
    assert bench.requests[-1].badge == TRAINER, "the server is not asked"


def test_a_tap_while_current_rises_is_refused_locally(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(110).current(2.0)  # above the threshold, not yet running

    assert bench.at(111).badge(BADGE) == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)]


def test_a_grant_that_arrives_once_the_machine_draws_current_hands_nothing_over(bench: Bench) -> None:
    bench.trainer_in()
    session = bench.machine.session_id
    bench.at(130).badge(BADGE)
    bench.at(130.1).current(2.0)
    actions = bench.at(130.2).reply(supervisor_id=TRAINER_ID)

    assert actions == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)]
    assert bench.machine.session_id == session
    assert bench.machine.supervisor_id is None


def test_after_running_stops_a_hand_over_is_possible_again(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(110).current(2.0)
    bench.at(112).current(2.0)
    bench.at(120).current(0.0)
    bench.at(123).current(0.0)
    assert bench.state is UNLOCKED

    assert requests(bench.at(124).badge(BADGE))[0].supervisor_badge == TRAINER


# After the trainer's session: a locked machine within the window.


def test_a_member_tapped_on_the_locked_machine_after_the_trainer_left_is_supervised(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(120).badge(TRAINER)  # badge-out
    assert bench.state is LOCKED
    actions = bench.at(130).badge(BADGE)

    assert requests(actions)[0].supervisor_badge == TRAINER
    assert bench.state is AUTHORISING
    granted = bench.at(130.05).reply(supervisor_id=TRAINER_ID)
    assert granted[0] == SwitchOn()
    started = only_event(granted)
    assert (started.badge, started.supervisor_id) == (BADGE, TRAINER_ID)


def test_after_the_window_a_tap_on_the_locked_machine_is_not_supervised(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(120).badge(TRAINER)

    assert requests(bench.at(400.5).badge(BADGE))[0].supervisor_badge is None


def test_the_trainers_own_tap_on_the_locked_machine_is_no_supervision(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(120).badge(TRAINER)

    assert requests(bench.at(130).badge(TRAINER))[0].supervisor_badge is None


def test_a_lock_command_ends_the_supervision(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(120).lock()

    assert bench.machine.supervision.trainer(120) is None
    assert requests(bench.at(130).badge(BADGE))[0].supervisor_badge is None


def test_a_refusal_on_the_locked_machine_stays_locked(bench: Bench) -> None:
    bench.trainer_in()
    bench.at(120).badge(TRAINER)
    bench.at(130).badge(BADGE)
    actions = bench.at(130.05).reply(granted=False, reason=Reason.SUPERVISION_REQUIRED)

    assert shows(actions) == [Show(Signal.DENIED, Reason.SUPERVISION_REQUIRED)]
    assert [a.state.state for a in actions if isinstance(a, PublishState)] == [LOCKED]
    assert bench.state is LOCKED

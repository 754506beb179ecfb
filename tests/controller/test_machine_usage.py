"""The interlock metering usage: sensed running, idle timeouts, deferred locks, durations."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.actions import (
    Action,
    EndReason,
    SessionEvent,
    Show,
    SwitchOff,
    SwitchOn,
)
from controller.hardware.interfaces import Signal
from protocol.messages import EventKind, Reason, UsageEvent
from tests.controller.interlock import (
    BADGE,
    LOCKED,
    OTHER,
    RUNNING,
    UNLOCKED,
    Bench,
    durations,
    events,
    only_event,
)


def test_running_is_sensed_with_hysteresis_and_counted_from_the_first_sample(bench: Bench) -> None:
    bench.granted()
    assert bench.at(110).current(2.0) == []
    assert bench.at(111.9).current(2.0) == []
    assert bench.state is UNLOCKED

    actions = bench.at(112).current(2.0)
    assert bench.state is RUNNING
    started = only_event(actions)
    assert started.kind is EventKind.RUNNING_STARTED
    assert durations(started) == (12_000, 2_000, 10_000), "running since the first sample above, at 110"
    assert Show(Signal.RUNNING) in actions

    # Between the thresholds: still running. Below, then back into the band: the count restarts.
    assert bench.at(120).current(0.7) == []
    assert bench.at(130).current(0.2) == []
    assert bench.at(132).current(0.2) == []
    assert bench.at(132.5).current(0.6) == []
    assert bench.at(133).current(0.1) == []
    assert bench.at(135.9).current(0.1) == []
    assert bench.state is RUNNING

    actions = bench.at(136).current(0.1)
    assert bench.state is UNLOCKED
    stopped = only_event(actions)
    assert stopped.kind is EventKind.RUNNING_STOPPED
    assert durations(stopped) == (36_000, 23_000, 13_000), "ran from 110 to 133"
    assert Show(Signal.GRANTED) in actions


def test_a_short_spike_is_not_running(bench: Bench) -> None:
    bench.granted()
    bench.at(110).current(2.0)
    bench.at(111).current(0.8)  # in the band, not above: the rise is over
    bench.at(111.5).current(2.0)
    assert bench.at(113).current(2.0) == []
    assert bench.state is UNLOCKED

    started = only_event(bench.at(113.5).current(2.0))
    assert durations(started) == (13_500, 2_000, 11_500), "since 111.5"


def test_idle_for_the_timeout_locks_and_ends_the_session(bench: Bench) -> None:
    bench.granted()

    assert bench.at(159.9).tick() == []
    actions = bench.at(160).tick()
    assert actions[0] == SwitchOff()
    assert bench.state is LOCKED
    ended = only_event(actions)
    assert ended.kind is EventKind.SESSION_ENDED
    assert ended.end_reason == EndReason.IDLE_TIMEOUT.value == "idle_timeout"
    assert durations(ended) == (60_000, 0, 60_000)
    assert Show(Signal.LOCKED) in actions
    assert bench.machine.session_id is None


def test_the_idle_timeout_counts_from_when_running_stopped(bench: Bench) -> None:
    bench.granted()
    bench.at(110).current(2.0)
    bench.at(112).current(2.0)
    bench.at(120).current(0.1)
    bench.at(123).current(0.1)
    assert bench.state is UNLOCKED

    assert bench.at(179.9).current(0.1) == []
    ended = only_event(bench.at(180).current(0.1))
    assert ended.end_reason == "idle_timeout"
    assert durations(ended) == (80_000, 10_000, 70_000)


def test_the_idle_timeout_waits_while_current_is_rising(bench: Bench) -> None:
    bench.granted()
    bench.at(159).current(2.0)

    assert bench.at(160).current(2.0) == []
    assert bench.state is UNLOCKED
    bench.at(161).current(2.0)
    assert bench.state is RUNNING


def test_the_same_badge_again_ends_an_idle_session(bench: Bench) -> None:
    bench.granted()
    actions = bench.at(130).badge(BADGE.lower())

    assert actions[0] == SwitchOff()
    ended = only_event(actions)
    assert ended.end_reason == "badge_out"
    assert durations(ended) == (30_000, 0, 30_000)
    assert bench.state is LOCKED


def test_badge_out_while_running_waits_for_idle(bench: Bench) -> None:
    bench.granted()
    bench.at(110).current(2.0)
    bench.at(112).current(2.0)

    assert bench.at(115).badge() == []
    assert bench.state is RUNNING
    assert bench.machine.end_pending is EndReason.BADGE_OUT
    bench.at(120).current(0.1)
    actions = bench.at(123).current(0.1)

    assert [e.kind for e in events(actions)] == [EventKind.RUNNING_STOPPED, EventKind.SESSION_ENDED]
    assert actions.index(SwitchOff()) > 0, "power goes off only after running stopped"
    ended = events(actions)[1]
    assert ended.end_reason == "badge_out"
    assert durations(ended) == (23_000, 10_000, 13_000)
    assert bench.state is LOCKED


def test_a_lock_command_never_switches_off_a_running_machine(bench: Bench) -> None:
    bench.granted()
    bench.at(110).current(2.0)
    bench.at(112).current(2.0)

    assert bench.at(113).lock() == []
    assert bench.at(200).current(3.0) == []
    assert bench.state is RUNNING
    bench.at(300).current(0.0)
    actions = bench.at(303).current(0.0)

    assert SwitchOff() in actions
    ended = events(actions)[-1]
    assert ended.end_reason == "lock_command"
    assert durations(ended) == (203_000, 190_000, 13_000)


def test_a_lock_command_waits_for_a_rise_in_current_to_settle(bench: Bench) -> None:
    bench.granted()
    bench.at(110).current(2.0)  # rising, not yet running
    assert bench.at(111).lock() == []
    actions = bench.at(111.5).current(0.2)

    assert SwitchOff() in actions
    assert only_event(actions).end_reason == "lock_command"


def test_a_lock_command_on_an_idle_machine_ends_the_session_at_once(bench: Bench) -> None:
    bench.granted()
    actions = bench.at(105).lock()

    assert actions[0] == SwitchOff()
    assert only_event(actions).end_reason == "lock_command"
    assert bench.at(106).lock() == [], "already locked"


def test_shutdown_closes_the_session_and_powers_off_an_idle_machine(bench: Bench) -> None:
    bench.granted()
    actions = bench.at(130).shutdown()

    ended = only_event(actions)
    assert ended.end_reason == "gateway_stopped"
    assert durations(ended) == (30_000, 0, 30_000)
    assert SwitchOff() in actions
    assert bench.state is LOCKED


def test_shutdown_does_not_cut_a_running_machine(bench: Bench) -> None:
    bench.granted()
    bench.at(110).current(2.0)
    bench.at(112).current(2.0)
    actions = bench.at(130).shutdown()

    ended = only_event(actions)
    assert durations(ended) == (30_000, 20_000, 10_000)
    assert SwitchOff() not in actions


def test_shutdown_of_a_locked_machine_only_switches_it_off(bench: Bench) -> None:
    bench.badge()
    actions = bench.at(100.1).shutdown()

    assert events(actions) == []
    assert SwitchOff() in actions
    assert bench.at(100.2).reply() == []


def test_durations_add_up_over_several_running_stretches(bench: Bench) -> None:
    bench.granted()
    for start in (110.0, 150.0, 200.0):
        bench.at(start).current(5.0)
        bench.at(start + 2).current(5.0)
        bench.at(start + 10.25).current(0.0)
        bench.at(start + 13.25).current(0.0)
    ended = only_event(bench.at(220).badge())

    assert durations(ended) == (120_000, 3 * 10_250, 120_000 - 3 * 10_250)
    usage = ended.with_seq(9)
    assert isinstance(usage, UsageEvent)
    assert (usage.seq, usage.session_id, usage.kind, usage.end_reason) == (
        9,
        ended.session_id,
        ended.kind,
        "badge_out",
    )
    assert (usage.unlocked_ms, usage.running_ms, usage.idle_ms) == durations(ended)


def test_a_clock_going_backwards_stands_still(bench: Bench) -> None:
    bench.granted()
    bench.at(90).tick()
    ended = only_event(bench.at(95).badge())

    assert durations(ended) == (0, 0, 0)


inputs = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5, allow_nan=False),
        st.one_of(
            st.tuples(st.just("badge"), st.sampled_from([BADGE, OTHER])),
            st.tuples(st.just("reply"), st.booleans()),
            st.tuples(st.just("current"), st.floats(min_value=0, max_value=3, allow_nan=False)),
            st.tuples(st.just("tick"), st.none()),
            st.tuples(st.just("lock"), st.none()),
            st.tuples(st.just("unlock"), st.none()),
        ),
    ),
    max_size=80,
)


def apply(bench: Bench, kind: str, value: Any) -> list[Action]:
    inputs: dict[str, Any] = {
        "badge": lambda: bench.badge(value),
        "reply": lambda: bench.reply(granted=value, reason=Reason.NOT_CERTIFIED),
        "current": lambda: bench.current(value),
        "tick": bench.tick,
        "lock": bench.lock,
        "unlock": bench.unlock,
    }
    actions: list[Action] = inputs[kind]()
    return actions


def check_events(actions: list[Action], sessions: dict[str, list[SessionEvent]]) -> None:
    for event in events(actions):
        assert event.unlocked_ms == event.running_ms + event.idle_ms
        assert min(durations(event)) >= 0
        history = sessions.setdefault(event.session_id, [])
        if history:
            assert history[-1].kind is not EventKind.SESSION_ENDED
            assert event.unlocked_ms >= history[-1].unlocked_ms
            assert event.running_ms >= history[-1].running_ms
        else:
            assert event.kind is EventKind.SESSION_STARTED
        history.append(event)


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_invariants_hold_for_any_sequence_of_inputs(steps: list[tuple[float, tuple[str, Any]]]) -> None:
    bench = Bench()
    sessions: dict[str, list[SessionEvent]] = {}
    powered = False
    for delay, (kind, value) in steps:
        bench.t += delay
        was_running = bench.state is RUNNING
        actions = apply(bench, kind, value)
        if SwitchOff() in actions and was_running:
            # Only if this very input saw the machine stop running first.
            assert any(e.kind is EventKind.RUNNING_STOPPED for e in events(actions))
        for action in actions:
            if isinstance(action, SwitchOn | SwitchOff):
                powered = isinstance(action, SwitchOn)
        check_events(actions, sessions)
        assert powered == (bench.state in (UNLOCKED, RUNNING))

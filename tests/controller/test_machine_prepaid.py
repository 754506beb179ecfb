"""A prepaid member's session: it lasts no longer than the balance pays for, and never
ends while the machine draws current."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.actions import EndReason, Show, SwitchOff, SwitchOn
from controller.hardware.interfaces import Signal
from controller.metering import Supply
from protocol.messages import EventKind, Reason
from tests.controller.interlock import (
    BADGE,
    LOCKED,
    RULES,
    RUNNING,
    UNLOCKED,
    Bench,
    durations,
    events,
    only_event,
    shows,
)

# The idle timeout out of the way: only the prepaid limit ends these sessions.
PATIENT = replace(RULES, idle_timeout_s=3600)


@pytest.fixture
def prepaid() -> Bench:
    return Bench(PATIENT)


def test_an_idle_session_ends_when_its_minutes_run_out(prepaid: Bench) -> None:
    assert SwitchOn() in prepaid.granted(max_minutes=2)

    assert prepaid.at(219.9).tick() == []
    actions = prepaid.at(220).tick()
    assert actions[0] == SwitchOff()
    ended = only_event(actions)
    assert (ended.kind, ended.end_reason) == (EventKind.SESSION_ENDED, "prepaid_limit")
    assert durations(ended) == (120_000, 0, 120_000)
    assert prepaid.state is LOCKED


def test_the_limit_counts_unlocked_time_running_or_not(prepaid: Bench) -> None:
    prepaid.granted(max_minutes=2)
    prepaid.at(110).current(2.0)
    prepaid.at(112).current(2.0)
    prepaid.at(150).current(0.0)
    prepaid.at(153).current(0.0)
    assert prepaid.state is UNLOCKED

    ended = only_event(prepaid.at(220).current(0.0))
    assert ended.end_reason == EndReason.PREPAID_LIMIT
    assert durations(ended) == (120_000, 40_000, 80_000)


def test_the_limit_waits_while_the_machine_runs_then_ends_once_idle(prepaid: Bench) -> None:
    prepaid.granted(max_minutes=1)
    prepaid.at(110).current(2.0)
    prepaid.at(112).current(2.0)
    assert prepaid.state is RUNNING

    # The minute is up mid-seam: power stays on, the end waits.
    assert prepaid.at(160).current(2.0) == []
    assert prepaid.at(300).current(2.0) == []
    assert prepaid.at(300).tick() == []
    assert (prepaid.state, prepaid.machine.end_pending) == (RUNNING, EndReason.PREPAID_LIMIT)

    assert prepaid.at(400).current(0.1) == []  # below, but not yet for idle_after_s
    actions = prepaid.at(403).current(0.1)
    kinds = [(e.kind, e.end_reason) for e in events(actions)]
    assert kinds == [(EventKind.RUNNING_STOPPED, None), (EventKind.SESSION_ENDED, "prepaid_limit")]
    assert SwitchOff() in actions
    assert durations(events(actions)[-1]) == (303_000, 290_000, 13_000), "ran from 110 to 400"
    assert prepaid.state is LOCKED


def test_current_rising_when_the_limit_comes_keeps_the_power_on(prepaid: Bench) -> None:
    prepaid.granted(max_minutes=1)
    prepaid.at(159).current(2.0)  # rising, not yet running
    assert prepaid.at(160).current(2.0) == []
    assert prepaid.machine.drawing

    prepaid.at(161).current(2.0)  # confirmed running since 159
    assert prepaid.state is RUNNING
    prepaid.at(170).current(0.0)
    ended = events(prepaid.at(173).current(0.0))[-1]
    assert ended.end_reason == "prepaid_limit"


def test_an_earlier_deferred_end_keeps_its_reason(prepaid: Bench) -> None:
    prepaid.granted(max_minutes=1)
    prepaid.at(110).current(2.0)
    prepaid.at(112).current(2.0)
    prepaid.at(130).lock()  # a lock waits for idle first
    prepaid.at(200).current(2.0)
    prepaid.at(210).current(0.0)
    ended = events(prepaid.at(213).current(0.0))[-1]
    assert ended.end_reason == EndReason.LOCK_COMMAND


def test_without_max_minutes_there_is_no_limit(prepaid: Bench) -> None:
    prepaid.granted()
    assert prepaid.at(3000).tick() == []
    assert prepaid.state is UNLOCKED


def test_zero_minutes_ends_the_session_at_the_next_moment(prepaid: Bench) -> None:
    actions = prepaid.granted(max_minutes=0)
    assert only_event(actions).kind is EventKind.SESSION_STARTED
    ended = only_event(prepaid.at(100.1).tick())
    assert ended.end_reason == "prepaid_limit"


def test_a_session_handed_over_gets_the_members_limit() -> None:
    bench = Bench(replace(PATIENT, supervision_window_s=300))
    bench.trainer_in()  # the trainer's own session: no limit
    bench.at(110).badge()
    actions = bench.reply(member_id=12, supervisor_id=3, max_minutes=1)
    assert [e.end_reason for e in events(actions)] == ["handover", None]
    assert bench.state is UNLOCKED

    assert bench.at(169.9).tick() == []
    ended = only_event(bench.at(170).tick())
    assert (ended.member_id, ended.end_reason) == (12, "prepaid_limit")
    assert bench.machine.supervision.trainer(170) is not None
    assert ended.badge == BADGE


def test_prepaid_energy_is_metered_like_any_session() -> None:
    bench = Bench(replace(PATIENT, supply=Supply(230.0)))
    bench.granted(max_minutes=1)
    bench.at(100).current(1.0)
    ended = only_event(bench.at(160).current(1.0))
    assert ended.end_reason == "prepaid_limit"
    assert ended.energy_wh == pytest.approx(230 * 60 / 3600, abs=0.001)  # to the mWh


def test_an_insufficient_balance_is_refused_like_any_refusal(bench: Bench) -> None:
    bench.badge()
    actions = bench.reply(granted=False, reason=Reason.INSUFFICIENT_BALANCE)
    assert shows(actions) == [Show(Signal.DENIED, Reason.INSUFFICIENT_BALANCE)]
    assert SwitchOn() not in actions
    assert events(actions) == []
    assert bench.state is LOCKED
    assert shows(bench.at(103).tick()) == [Show(Signal.LOCKED)], "then the lights go back"

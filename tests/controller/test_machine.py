"""The interlock deciding access: requests, replies, timeouts, commands, refusals."""

from __future__ import annotations

from controller.actions import (
    PublishState,
    SendRequest,
    Show,
    SwitchOff,
    SwitchOn,
)
from controller.hardware.interfaces import Signal
from controller.machine import Machine
from protocol.messages import AccessReply, DecidedBy, EventKind, Reason
from tests.controller.interlock import (
    AUTHORISING,
    BADGE,
    LOCKED,
    OTHER,
    RULES,
    UNLOCKED,
    Bench,
    durations,
    events,
    only_event,
    shows,
    wall,
)


def test_start_makes_sure_the_machine_is_off_and_locked(bench: Bench) -> None:
    actions = bench.machine.start(bench.t, wall(bench.t))

    assert actions[0] == SwitchOff()
    assert Show(Signal.LOCKED) in actions
    (state,) = [a.state for a in actions if isinstance(a, PublishState)]
    assert state.state is LOCKED
    assert state.session_id is None


def test_a_badge_on_a_locked_machine_asks_the_server(bench: Bench) -> None:
    actions = bench.badge("04a1b2c3")

    assert isinstance(actions[0], SendRequest), "the request goes out before anything else"
    request = actions[0].request
    assert request.request_id == "id-1"
    assert request.badge == BADGE
    assert request.machine == "sew-1"
    assert request.sent_at_ms == wall(100)
    assert request.expires_at_ms == wall(100) + 500
    assert bench.state is AUTHORISING
    assert Show(Signal.AUTHORISING) in actions
    assert [a.state.state for a in actions if isinstance(a, PublishState)] == [AUTHORISING]


def test_each_request_has_its_own_id(bench: Bench) -> None:
    bench.badge()
    first = bench.last_request_id
    bench.at(100.2).reply(granted=False, reason=Reason.NOT_CERTIFIED)
    bench.at(101).badge()

    assert bench.last_request_id != first


def test_granted_powers_the_machine_and_starts_a_session(bench: Bench) -> None:
    bench.badge()
    actions = bench.at(100.05).reply()

    assert actions[0] == SwitchOn(), "power first: the member is waiting"
    assert bench.state is UNLOCKED
    assert Show(Signal.GRANTED) in actions
    started = only_event(actions)
    assert started.kind is EventKind.SESSION_STARTED
    assert started.session_id == bench.machine.session_id == "id-2"
    assert started.badge == BADGE
    assert started.member_id == 7
    assert started.decided_by is DecidedBy.SERVER
    assert started.at_ms == wall(100.05)
    assert durations(started) == (0, 0, 0)
    (state,) = [a.state for a in actions if isinstance(a, PublishState)]
    assert (state.state, state.session_id, state.member_id) == (UNLOCKED, "id-2", 7)


def test_denied_shows_the_reason_then_goes_back_to_locked(bench: Bench) -> None:
    bench.badge()
    actions = bench.at(100.05).reply(granted=False, reason=Reason.NOT_CERTIFIED)

    assert bench.state is LOCKED
    assert SwitchOn() not in actions
    assert shows(actions) == [Show(Signal.DENIED, Reason.NOT_CERTIFIED)]
    assert events(actions) == []
    assert bench.at(103.0).tick() == []
    assert bench.at(103.05).tick() == [Show(Signal.LOCKED)]
    assert bench.at(104).tick() == []


def test_no_answer_in_time_is_refused_as_server_unreachable(bench: Bench) -> None:
    bench.badge()

    assert bench.at(100.499).tick() == []
    assert bench.state is AUTHORISING
    actions = bench.at(100.5).tick()
    assert bench.state is LOCKED
    assert shows(actions) == [Show(Signal.DENIED, Reason.SERVER_UNREACHABLE)]
    assert [a.state.state for a in actions if isinstance(a, PublishState)] == [LOCKED]


def test_a_reply_after_the_timeout_is_ignored(bench: Bench) -> None:
    bench.badge()
    late_id = bench.last_request_id
    bench.at(100.6).tick()

    assert bench.at(100.7).reply(request_id=late_id) == []
    assert bench.state is LOCKED


def test_a_late_reply_is_ignored_even_without_a_tick_in_between(bench: Bench) -> None:
    bench.badge()
    actions = bench.at(101).reply()

    assert bench.state is LOCKED
    assert SwitchOn() not in actions
    assert shows(actions) == [Show(Signal.DENIED, Reason.SERVER_UNREACHABLE)]


def test_replies_to_other_requests_and_duplicates_are_ignored(bench: Bench) -> None:
    assert bench.reply(request_id="never-asked") == [], "nothing pending: ignored"
    bench.badge()
    assert bench.at(100.01).reply(request_id="someone-else") == []
    assert bench.state is AUTHORISING
    first = bench.at(100.02).reply()
    assert bench.state is UNLOCKED
    session = bench.machine.session_id

    assert bench.at(100.03).reply() == [], "a duplicate of the granted reply changes nothing"
    assert bench.machine.session_id == session
    assert len(events(first)) == 1


def test_a_second_read_while_authorising_is_ignored(bench: Bench) -> None:
    bench.badge()
    assert bench.at(100.1).badge() == []
    assert bench.at(100.1).badge(OTHER) == []
    assert bench.state is AUTHORISING


def test_a_lock_command_cancels_a_pending_request(bench: Bench) -> None:
    bench.badge()
    pending = bench.last_request_id
    actions = bench.at(100.1).lock()

    assert bench.state is LOCKED
    assert Show(Signal.LOCKED) in actions
    assert bench.at(100.2).reply(request_id=pending) == []
    assert bench.state is LOCKED


def test_another_badge_while_in_use_is_refused_locally(bench: Bench) -> None:
    bench.granted()
    actions = bench.at(110).badge(OTHER)

    assert actions == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)], "refused here, no request to the server"
    assert bench.state is UNLOCKED
    assert bench.at(113).tick() == [Show(Signal.GRANTED)], "the lights come back to the machine's state"


def test_another_badge_while_running_is_refused_and_running_shows_again(bench: Bench) -> None:
    bench.granted()
    bench.at(110).current(2.0)
    bench.at(112).current(2.0)

    assert bench.at(120).badge(OTHER) == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)]
    assert bench.at(123).current(2.0) == [Show(Signal.RUNNING)]
    assert bench.machine.end_pending is None


def test_an_unlock_command_opens_a_session_without_a_badge(bench: Bench) -> None:
    actions = bench.unlock()

    assert actions[0] == SwitchOn()
    started = only_event(actions)
    assert started.kind is EventKind.SESSION_STARTED
    assert started.badge is None
    assert bench.state is UNLOCKED
    assert bench.at(110).badge(BADGE) == [Show(Signal.DENIED, Reason.MACHINE_IN_USE)], (
        "no badge owns this session"
    )


def test_an_unlock_command_cancels_a_deferred_lock(bench: Bench) -> None:
    bench.granted()
    bench.at(110).current(2.0)
    bench.at(112).current(2.0)
    bench.at(113).lock()
    assert bench.at(114).unlock() == []
    bench.at(120).current(0.0)
    bench.at(123).current(0.0)

    assert bench.state is UNLOCKED


def test_sessions_get_distinct_ids() -> None:
    machine = Machine("sew-1", RULES)
    ids = []
    t = 0.0
    for _ in range(3):
        (request,) = [a.request for a in machine.badge(BADGE, t, wall(t)) if isinstance(a, SendRequest)]
        reply = AccessReply(
            request_id=request.request_id, machine="sew-1", badge=BADGE, granted=True, reason=Reason.GRANTED
        )
        ids.append(only_event(machine.reply(reply, t, wall(t))).session_id)
        machine.badge(BADGE, t + 1, wall(t + 1))
        t += 2
    assert len(set(ids)) == 3
    assert all(len(i) == 32 for i in ids)

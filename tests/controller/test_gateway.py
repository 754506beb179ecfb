"""Whole gateways deciding and metering against a real Mosquitto, with a stand-in server and a manual clock.

Simulated inputs (taps, current) are changed only while the manual clock
stands still, then the clock moves and the test waits for the effect: the
worker samples only when the clock has moved, so every duration is exact.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from controller.clock import ManualClock
from controller.gateway import Gateway
from controller.hardware.gpio import LedIndicator, RelaySwitch
from controller.hardware.interfaces import NotSimulated, Signal
from controller.hardware.simulated import SimulatedBadgeReader, SimulatedCurrentSource
from protocol.messages import (
    AccessReply,
    CommandAction,
    EventKind,
    MachineStateName,
    Reason,
)
from protocol.topics import Channel
from tests.controller.responder import MEMBER_BADGE, MEMBER_ID, Responder
from tests.controller.support import gateway_config, round_trip, send_command, settle
from tests.services import Mosquitto, free_port

LOCKED, AUTHORISING, UNLOCKED, RUNNING = (
    MachineStateName.LOCKED,
    MachineStateName.AUTHORISING,
    MachineStateName.UNLOCKED,
    MachineStateName.RUNNING,
)
STRANGER = "0BADCAFE"


def test_the_simulated_parts_are_reachable(gateway: Gateway) -> None:
    sewing = gateway.machines["sew-1"]

    assert isinstance(sewing.reader, SimulatedBadgeReader)
    assert isinstance(sewing.current, SimulatedCurrentSource)
    assert isinstance(sewing.switch, RelaySwitch)
    assert sewing.switch.is_on is False
    assert sewing.state is LOCKED
    assert gateway.boot == 1


def test_a_full_session_is_reported_in_order_with_sensed_running_time(
    gateway: Gateway, responder: Responder, clock: ManualClock
) -> None:
    sewing = gateway.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5)
    assert sewing.is_on

    settle(gateway, sewing, 2.0, 130.0, clock)
    clock.set(131.0)
    assert gateway.wait_for(lambda: sewing.state is RUNNING, 5)
    settle(gateway, sewing, 0.0, 190.0, clock)
    clock.set(195.0)
    assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5)
    assert sewing.is_on
    clock.set(490.0)  # idle since 190, and the idle timeout is 300 s
    assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
    assert not sewing.is_on

    assert responder.wait_for(lambda seen: len(seen.events) == 4)
    events = responder.seen.events
    assert [e.kind for e in events] == [
        EventKind.SESSION_STARTED,
        EventKind.RUNNING_STARTED,
        EventKind.RUNNING_STOPPED,
        EventKind.SESSION_ENDED,
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert len({e.session_id for e in events}) == 1
    assert events[0].badge == MEMBER_BADGE
    assert events[0].member_id == MEMBER_ID
    assert [(e.unlocked_ms, e.running_ms, e.idle_ms) for e in events] == [
        (0, 0, 0),
        (31_000, 1_000, 30_000),
        (95_000, 60_000, 35_000),
        (390_000, 60_000, 330_000),
    ]
    assert events[3].end_reason == "idle_timeout"
    assert events[3].at_ms == clock.wall_ms()
    assert gateway.wait_for(lambda: gateway.journal.unacked() == [], 5), "every event acknowledged"

    assert responder.wait_for(
        lambda seen: [s.state for s in seen.states if s.machine == "sew-1"][-1] is LOCKED
    )
    sewing_states = [s.state for s in responder.seen.states if s.machine == "sew-1"]
    assert sewing_states[-6:] == [LOCKED, AUTHORISING, UNLOCKED, RUNNING, UNLOCKED, LOCKED]
    assert responder.seen.requests[0].machine == "sew-1"


def test_a_refused_badge_keeps_the_machine_off(gateway: Gateway, responder: Responder) -> None:
    sewing = gateway.machines["sew-1"]
    lights = sewing.indicator
    assert isinstance(lights, LedIndicator)
    sewing.tap(STRANGER)

    assert gateway.wait_for(lambda: lights.signal is Signal.DENIED, 5)
    assert lights.reason is Reason.UNKNOWN_BADGE
    assert sewing.state is LOCKED
    assert not sewing.is_on
    assert responder.seen.events == []


def test_no_answer_is_refused_as_server_unreachable(
    broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock
) -> None:
    silent = Responder(broker.url, site_id, decide=lambda request: None)
    try:
        with Gateway(gateway_config(broker.url, site_id, tmp_path), clock=clock) as gateway:
            assert gateway.wait_connected(10)
            sewing = gateway.machines["sew-1"]
            sewing.tap(MEMBER_BADGE)
            assert silent.wait_for(lambda seen: len(seen.requests) == 1)
            assert sewing.state is AUTHORISING
            clock.advance(0.5)

            assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
            lights = sewing.indicator
            assert isinstance(lights, LedIndicator)
            assert (lights.signal, lights.reason) == (Signal.DENIED, Reason.SERVER_UNREACHABLE)
            assert not sewing.is_on
    finally:
        silent.close()


def test_without_a_broker_a_tap_is_refused_after_the_timeout(site_id: str, tmp_path: Path) -> None:
    clock = ManualClock()
    nowhere = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    with Gateway(gateway_config(nowhere, site_id, tmp_path), clock=clock) as gateway:
        sewing = gateway.machines["sew-1"]
        sewing.tap(MEMBER_BADGE)
        assert gateway.wait_for(lambda: sewing.state is AUTHORISING, 5)
        clock.advance(0.5)

        assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
        assert not sewing.is_on
        assert not gateway.link.connected


def test_a_late_reply_is_ignored(gateway: Gateway, responder: Responder, clock: ManualClock) -> None:
    responder.decide = lambda request: None
    sewing = gateway.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert responder.wait_for(lambda seen: len(seen.requests) == 1)
    clock.advance(0.6)
    assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)

    request = responder.seen.requests[0]
    late = AccessReply(
        request_id=request.request_id,
        machine="sew-1",
        badge=MEMBER_BADGE,
        granted=True,
        reason=Reason.GRANTED,
    )
    responder.send(gateway.config.gateway.id, Channel.ACCESS_REPLY, late)
    round_trip(responder, gateway)

    assert sewing.state is LOCKED
    assert not sewing.is_on


def test_malformed_payloads_do_not_disturb_the_gateway(
    gateway: Gateway, responder: Responder, caplog: pytest.LogCaptureFixture
) -> None:
    me = gateway.config.gateway.id
    for channel in (Channel.ACCESS_REPLY, Channel.COMMAND, Channel.EVENTS_ACK):
        for payload in (b"", b"garbage", b"{}", b'{"request_id": 5}', b"x" * 5000):
            responder.send(me, channel, payload)
    stray = AccessReply(
        request_id="nobody-asked", machine="sew-1", badge=STRANGER, granted=True, reason=Reason.GRANTED
    )
    responder.send(me, Channel.ACCESS_REPLY, stray)
    foreign = msgspec.structs.replace(stray, machine="no-such-machine")
    responder.send(me, Channel.ACCESS_REPLY, foreign)
    send_command(responder, gateway, CommandAction.LOCK, machine="no-such-machine")
    send_command(responder, gateway, CommandAction.UNLOCK)  # unlock needs a machine
    round_trip(responder, gateway)

    sewing = gateway.machines["sew-1"]
    assert sewing.state is LOCKED
    assert not sewing.is_on
    assert any("dropped a malformed message" in r.getMessage() for r in caplog.records)

    sewing.tap(MEMBER_BADGE)
    assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5), "still deciding after the junk"


def test_a_lock_command_waits_until_the_machine_is_idle(
    gateway: Gateway, responder: Responder, clock: ManualClock
) -> None:
    printer = gateway.machines["print-1"]
    unlock_id = send_command(responder, gateway, CommandAction.UNLOCK, machine="print-1")
    assert gateway.wait_for(lambda: printer.state is UNLOCKED, 5)
    settle(gateway, printer, 1.5, 110.0, clock)
    clock.set(111.0)
    assert gateway.wait_for(lambda: printer.state is RUNNING, 5)

    send_command(responder, gateway, CommandAction.LOCK, machine="print-1", reason="closing time")
    round_trip(responder, gateway)
    assert printer.state is RUNNING, "never cut a print in progress"
    assert printer.is_on

    settle(gateway, printer, 0.0, 200.0, clock)
    clock.set(205.0)
    assert gateway.wait_for(lambda: printer.state is LOCKED, 5)
    assert not printer.is_on
    assert responder.wait_for(lambda seen: any(e.kind is EventKind.SESSION_ENDED for e in seen.events))
    ended = next(e for e in responder.seen.events if e.kind is EventKind.SESSION_ENDED)
    assert (ended.end_reason, ended.running_ms, ended.unlocked_ms) == ("lock_command", 90_000, 105_000)

    # A repeated unlock and an expired one are both dropped.
    send_command(responder, gateway, CommandAction.UNLOCK, machine="print-1", command_id=unlock_id)
    send_command(
        responder, gateway, CommandAction.UNLOCK, machine="print-1", expires_at_ms=gateway.clock.wall_ms() - 1
    )
    round_trip(responder, gateway)
    assert printer.state is LOCKED
    assert not printer.is_on


def test_simulation_helpers_refuse_real_parts(gateway: Gateway) -> None:
    sewing = gateway.machines["sew-1"]
    sewing.parts.reader = object()  # type: ignore[assignment]
    with pytest.raises(NotSimulated):
        sewing.tap(MEMBER_BADGE)
    sewing.parts.reader = SimulatedBadgeReader()

"""Whole gateways on a real Mosquitto: energy and power where the voltage is known, a prepaid
member's limit, and the backlog of unacknowledged events in the retained status.

As in test_gateway.py, simulated inputs change only while the manual clock stands still.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

import controller.gateway
from controller.actions import EndReason
from controller.clock import ManualClock
from controller.gateway import BACKLOG_STATUS_EVERY_S, Gateway
from controller.hardware.interfaces import Signal
from controller.station import MachineStation
from protocol.messages import (
    AccessReply,
    AccessRequest,
    EventAck,
    EventKind,
    GatewayState,
    MachineStateName,
    Reason,
)
from protocol.topics import Channel
from tests.controller.responder import MEMBER_BADGE, Responder, grant_member, retained_status
from tests.controller.support import gateway_config, round_trip, settle
from tests.services import Mosquitto

LOCKED, UNLOCKED, RUNNING = MachineStateName.LOCKED, MachineStateName.UNLOCKED, MachineStateName.RUNNING


def prepaid(minutes: int) -> Callable[[AccessRequest], AccessReply | None]:
    """The member is granted, for what their balance pays: ``minutes``."""

    def decide(request: AccessRequest) -> AccessReply | None:
        reply = grant_member(request)
        if reply is None or not reply.granted:
            return reply
        return msgspec.structs.replace(reply, max_minutes=minutes)

    return decide


@pytest.fixture
def metered(broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock) -> Iterator[Gateway]:
    """The sewing machine's voltage is known (230 V, resistive); the printer's is not."""
    config = gateway_config(
        broker.url,
        site_id,
        tmp_path / "gw",
        telemetry_interval_s=5,
        sewing={"current": {"voltage_v": 230.0, "power_factor": 1.0}},
    )
    running = Gateway(config, clock=clock)
    running.start()
    assert running.wait_connected(10)
    yield running
    running.stop()


def at(gateway: Gateway, station: MachineStation, t: float, clock: ManualClock) -> None:
    """Move the clock to ``t`` and wait until the worker has sampled there."""
    clock.set(t)
    assert gateway.wait_for(lambda: station.machine.seen_until >= t, 5)


def test_a_prepaid_session_runs_past_its_minutes_and_ends_once_idle(
    metered: Gateway, responder: Responder, clock: ManualClock
) -> None:
    responder.decide = prepaid(2)
    sewing = metered.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert metered.wait_for(lambda: sewing.state is UNLOCKED, 5)

    settle(metered, sewing, 2.0, 130.0, clock)
    clock.set(131.0)
    assert metered.wait_for(lambda: sewing.state is RUNNING, 5)
    settle(metered, sewing, 2.0, 250.0, clock)  # the 2 minutes ended at 220, mid-seam
    assert sewing.state is RUNNING
    assert sewing.is_on
    assert sewing.machine.end_pending is EndReason.PREPAID_LIMIT

    settle(metered, sewing, 0.0, 260.0, clock)
    clock.set(265.0)
    assert metered.wait_for(lambda: sewing.state is LOCKED, 5)
    assert not sewing.is_on

    assert responder.wait_for(lambda seen: len(seen.events) == 4)
    events = responder.seen.events
    assert [(e.kind, e.end_reason) for e in events] == [
        (EventKind.SESSION_STARTED, None),
        (EventKind.RUNNING_STARTED, None),
        (EventKind.RUNNING_STOPPED, None),
        (EventKind.SESSION_ENDED, "prepaid_limit"),
    ]
    assert (events[-1].unlocked_ms, events[-1].running_ms) == (165_000, 130_000)
    # 460 W from the sample at 130 to the one at 260, nothing before or after.
    assert [e.energy_wh for e in events] == pytest.approx([0.0, 0.128, 16.611, 16.611], abs=0.001)


def test_telemetry_carries_power_where_the_voltage_is_known_and_the_state(
    metered: Gateway, responder: Responder, clock: ManualClock
) -> None:
    sewing = metered.machines["sew-1"]
    settle(metered, sewing, 1.5, 110.0, clock)

    assert responder.wait_for(lambda seen: {t.machine for t in seen.telemetry} >= {"sew-1", "print-1"})
    by_machine = {t.machine: t for t in responder.seen.telemetry}
    assert by_machine["sew-1"].current_a == 1.5
    assert by_machine["sew-1"].power_w == pytest.approx(345.0)
    assert by_machine["sew-1"].state is LOCKED
    assert by_machine["print-1"].power_w is None
    assert by_machine["print-1"].state is LOCKED


def test_a_machine_without_voltage_reports_no_energy(
    gateway: Gateway, responder: Responder, clock: ManualClock
) -> None:
    sewing = gateway.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5)
    sewing.tap(MEMBER_BADGE)
    assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
    assert responder.wait_for(lambda seen: len(seen.events) == 2)
    assert [e.energy_wh for e in responder.seen.events] == [None, None]


def test_a_lasting_backlog_is_published_in_the_status_and_so_is_its_end(
    broker: Mosquitto, site_id: str, gateway: Gateway, responder: Responder, clock: ManualClock
) -> None:
    responder.ack_events = False  # the server is slow: events wait in the journal
    sewing = gateway.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert responder.wait_for(lambda seen: len(seen.events) == 1)

    # Found at one check, it may be passing; found at the next one too, it is published.
    at(gateway, sewing, 100 + BACKLOG_STATUS_EVERY_S, clock)
    at(gateway, sewing, 100 + 2 * BACKLOG_STATUS_EVERY_S, clock)
    assert responder.wait_for(lambda seen: seen.statuses[-1].backlog == 1)
    assert [s.backlog for s in responder.seen.statuses] == [0, 1], "the birth, then one status"
    retained = retained_status(broker.url, site_id, "gw-1")
    assert retained is not None
    assert (retained.state, retained.backlog) == (GatewayState.ONLINE, 1)

    responder.send("gw-1", Channel.EVENTS_ACK, EventAck(seq=1))
    assert responder.wait_for(lambda seen: seen.statuses[-1].backlog == 0)  # at once, no clock moved
    assert [s.backlog for s in responder.seen.statuses] == [0, 1, 0]
    retained = retained_status(broker.url, site_id, "gw-1")
    assert retained is not None
    assert retained.backlog == 0


def test_an_event_still_unacknowledged_a_check_later_is_published_again(
    gateway: Gateway, responder: Responder, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server lost it (it was down, the broker link of the gateway stayed up): sent again.
    monkeypatch.setattr(controller.gateway, "RESEND_AFTER_S", 0.0)  # real time; this clock is manual
    responder.ack_events = False
    sewing = gateway.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert responder.wait_for(lambda seen: len(seen.events) == 1)
    at(gateway, sewing, 100 + BACKLOG_STATUS_EVERY_S, clock)
    assert len(responder.seen.events) == 1, "a passing backlog is not sent again"
    responder.ack_events = True
    at(gateway, sewing, 100 + 2 * BACKLOG_STATUS_EVERY_S, clock)
    assert responder.wait_for(lambda seen: len(seen.events) == 2)
    assert [e.seq for e in responder.seen.events] == [1, 1]
    assert gateway.wait_for(lambda: gateway.journal.backlog() == 0, 5)


def test_events_acknowledged_promptly_publish_no_status(
    gateway: Gateway, responder: Responder, clock: ManualClock
) -> None:
    sewing = gateway.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5)
    settle(gateway, sewing, 2.0, 130.0, clock)
    at(gateway, sewing, 131.0, clock)
    settle(gateway, sewing, 0.0, 160.0, clock)
    at(gateway, sewing, 165.0, clock)
    sewing.tap(MEMBER_BADGE)
    assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
    assert responder.wait_for(lambda seen: len(seen.events) == 4)
    for t in (175.0, 185.0, 195.0):  # checks of the backlog, with nothing waiting
        at(gateway, sewing, t, clock)

    round_trip(responder, gateway)  # a refresh publishes the status once more
    assert [s.backlog for s in responder.seen.statuses] == [0, 0]


def test_a_restarted_gateway_announces_its_backlog_then_its_end(
    broker: Mosquitto, site_id: str, gateway: Gateway, responder: Responder, clock: ManualClock
) -> None:
    responder.ack_events = False
    sewing = gateway.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert responder.wait_for(lambda seen: len(seen.events) == 1)
    gateway.stop()  # closes the session: two events wait
    offline = retained_status(broker.url, site_id, "gw-1")
    assert offline is not None
    assert (offline.state, offline.backlog) == (GatewayState.OFFLINE, 2)

    responder.ack_events = True
    again = Gateway(gateway.config, clock=clock)  # the same journal
    again.start()
    try:
        assert again.wait_connected(10)
        assert responder.wait_for(lambda seen: seen.statuses[-1].backlog == 0)
        births = [s for s in responder.seen.statuses if s.boot == again.boot]
        assert [(s.state, s.backlog) for s in births] == [(GatewayState.ONLINE, 2), (GatewayState.ONLINE, 0)]
    finally:
        again.stop()


def test_an_insufficient_balance_is_shown_as_a_refusal(gateway: Gateway, responder: Responder) -> None:
    def broke(request: AccessRequest) -> AccessReply:
        return AccessReply(
            request_id=request.request_id,
            machine=request.machine,
            badge=request.badge,
            granted=False,
            reason=Reason.INSUFFICIENT_BALANCE,
            member_id=7,
        )

    responder.decide = broke
    sewing = gateway.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert gateway.wait_for(lambda: sewing.shown == (Signal.DENIED, Reason.INSUFFICIENT_BALANCE), 5)
    assert sewing.state is LOCKED
    assert not sewing.is_on
    round_trip(responder, gateway)
    assert responder.seen.events == []

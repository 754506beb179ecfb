"""Gateways coming and going: reconnection and replay, broker outages, stop and restart, telemetry.

As in test_gateway: inputs change while the manual clock stands still, then it moves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.clock import ManualClock
from controller.gateway import Gateway
from controller.hardware.gpio import RelaySwitch
from protocol.messages import (
    EventKind,
    GatewayState,
    MachineStateName,
)
from tests.controller.responder import MEMBER_BADGE, Responder, retained_status
from tests.controller.support import gateway_config, round_trip, settle
from tests.services import Mosquitto, mosquitto

LOCKED, AUTHORISING, UNLOCKED, RUNNING = (
    MachineStateName.LOCKED,
    MachineStateName.AUTHORISING,
    MachineStateName.UNLOCKED,
    MachineStateName.RUNNING,
)
STRANGER = "0BADCAFE"


def _replayed(seqs: list[int]) -> bool:
    """Whether 1 then 2 appear, in that order, in ``seqs``."""
    return 1 in seqs and 2 in seqs[seqs.index(1) :]


def test_unacknowledged_events_are_replayed_after_reconnecting(
    broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock
) -> None:
    forgetful = Responder(broker.url, site_id, ack_events=False)
    try:
        with Gateway(gateway_config(broker.url, site_id, tmp_path), clock=clock) as gateway:
            assert gateway.wait_connected(10)
            sewing = gateway.machines["sew-1"]
            sewing.tap(MEMBER_BADGE)
            assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5)
            clock.advance(42)
            sewing.tap(MEMBER_BADGE)  # badge out
            assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
            assert forgetful.wait_for(lambda seen: len(seen.events) == 2)
            assert [e.seq for e in gateway.journal.unacked()] == [1, 2]

            forgetful.ack_events = True
            gateway.link.drop_connection()

            # paho may first resend an event whose PUBACK the cut connection lost (a
            # duplicate, harmless); the journal's replay then follows, in seq order.
            assert forgetful.wait_for(lambda seen: _replayed([e.seq for e in seen.events[2:]]), 15)
            first, second = forgetful.seen.events[:2]
            again = forgetful.seen.events[2:]
            assert all(e == (first if e.seq == 1 else second) for e in again), "the same events, unchanged"
            assert second.unlocked_ms == 42_000
            assert gateway.wait_for(lambda: gateway.journal.unacked() == [], 5)
    finally:
        forgetful.close()


def test_events_made_while_the_broker_is_down_are_delivered_when_it_returns(
    site_id: str, tmp_path: Path, clock: ManualClock
) -> None:
    with mosquitto() as own:
        first = Responder(own.url, site_id)
        with Gateway(gateway_config(own.url, site_id, tmp_path), clock=clock) as gateway:
            assert gateway.wait_connected(10)
            sewing = gateway.machines["sew-1"]
            sewing.tap(MEMBER_BADGE)
            assert first.wait_for(lambda seen: len(seen.events) == 1)
            assert gateway.wait_for(lambda: gateway.journal.unacked() == [], 5), "its ack has arrived"
            first.close()

            own.stop()
            assert gateway.wait_for(lambda: not gateway.link.connected, 10)
            clock.advance(30)
            sewing.tap(MEMBER_BADGE)  # badge out while the broker is down
            assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
            assert not sewing.is_on
            assert [e.kind for e in gateway.journal.unacked()] == [EventKind.SESSION_ENDED]

            own.restart()
            second = Responder(own.url, site_id)
            try:
                assert gateway.wait_connected(30)
                round_trip(second, gateway)  # a refresh also replays whatever is unacknowledged
                assert second.wait_for(lambda seen: any(e.seq == 2 for e in seen.events))
                ended = next(e for e in second.seen.events if e.seq == 2)
                assert (ended.end_reason, ended.unlocked_ms) == ("badge_out", 30_000)
                assert gateway.wait_for(lambda: gateway.journal.unacked() == [], 5)
            finally:
                second.close()


def test_stop_closes_sessions_and_powers_off_only_idle_machines(
    broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: dict[str, bool] = {}
    original_close = RelaySwitch.close

    def close_and_note(relay: RelaySwitch) -> None:
        released[str(relay.pin)] = relay.is_on
        original_close(relay)

    monkeypatch.setattr(RelaySwitch, "close", close_and_note)
    server = Responder(broker.url, site_id)
    try:
        gateway = Gateway(gateway_config(broker.url, site_id, tmp_path), clock=clock)
        gateway.start()
        assert gateway.wait_connected(10)
        sewing, printer = gateway.machines["sew-1"], gateway.machines["print-1"]
        sewing.tap(MEMBER_BADGE)
        printer.tap(MEMBER_BADGE)
        assert gateway.wait_for(lambda: sewing.state is UNLOCKED and printer.state is UNLOCKED, 5)
        settle(gateway, printer, 2.0, 120.0, clock)
        clock.set(121.0)
        assert gateway.wait_for(lambda: printer.state is RUNNING, 5)
        clock.set(150.0)
        gateway.stop()

        assert released == {"17": False, "22": True}, "the idle one off, the running one left as it was"
        assert server.wait_for(lambda seen: sum(e.kind is EventKind.SESSION_ENDED for e in seen.events) == 2)
        ended = {e.machine: e for e in server.seen.events if e.kind is EventKind.SESSION_ENDED}
        assert ended["sew-1"].end_reason == ended["print-1"].end_reason == "gateway_stopped"
        assert (ended["print-1"].unlocked_ms, ended["print-1"].running_ms) == (50_000, 30_000)
        status = retained_status(broker.url, site_id, "gw-1")
        assert status is not None
        assert status.state is GatewayState.OFFLINE
    finally:
        server.close()


def test_a_restart_keeps_numbering_events_and_counts_boots(
    broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock, responder: Responder
) -> None:
    config = gateway_config(broker.url, site_id, tmp_path)
    with Gateway(config, clock=clock) as first:
        assert first.wait_connected(10)
        first.machines["sew-1"].tap(MEMBER_BADGE)
        assert first.wait_for(lambda: first.machines["sew-1"].state is UNLOCKED, 5)
    assert responder.wait_for(lambda seen: [e.seq for e in seen.events] == [1, 2])

    with Gateway(config, clock=clock) as second:
        assert second.boot == 2
        assert second.wait_connected(10)
        sewing = second.machines["sew-1"]
        assert sewing.state is LOCKED
        assert not sewing.is_on, "a restart never powers a machine by itself"
        assert responder.wait_for(lambda seen: seen.statuses[-1].boot == 2)
        sewing.tap(MEMBER_BADGE)
        assert responder.wait_for(lambda seen: any(e.seq == 3 for e in seen.events))
        third = next(e for e in responder.seen.events if e.seq == 3)
        assert third.kind is EventKind.SESSION_STARTED
        assert third.session_id != responder.seen.events[0].session_id


def test_telemetry_reports_the_current(
    broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock, responder: Responder
) -> None:
    config = gateway_config(broker.url, site_id, tmp_path, telemetry_interval_s=5)
    with Gateway(config, clock=clock) as gateway:
        assert gateway.wait_connected(10)
        gateway.machines["print-1"].set_amps(1.25)
        clock.advance(5)

        assert responder.wait_for(lambda seen: any(t.machine == "print-1" for t in seen.telemetry))
        sample = next(t for t in responder.seen.telemetry if t.machine == "print-1")
        assert (sample.current_a, sample.running) == (1.25, False)
        assert sample.at_ms == clock.wall_ms()

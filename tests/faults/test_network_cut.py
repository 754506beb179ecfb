"""A network cut between the gateway and the broker, through a proxy the test controls.

During a session the machine must not notice: the member keeps sewing, the relay stays
on, running time is still sensed, and a badge-out ends the session locally. When the
network comes back, the journal is replayed and the server bills the session once.
A cut in the middle of that replay (the acks lost on the way back) makes the gateway
replay again what the server already applied: it must be applied once.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import Stack
from tests.faults.harness import (
    AMINA,
    LUCAS,
    WORKING_A,
    AckSpy,
    assert_billed_exactly_once,
    assert_relays_safe,
    relay_changes,
    wait_until,
)
from tests.faults.proxy import Mode

CONVERGE_S = 20
RUNNING_TOLERANCE_MS = 250


@pytest.mark.parametrize("mode", [Mode.DROP, Mode.BLACKHOLE], ids=["drop", "blackhole"])
def test_network_cut_during_a_session(shared_stack: Stack, mode: Mode) -> None:
    proxy = shared_stack.proxy()
    # A short keepalive: through a blackhole, nothing but the keepalive tells the gateway.
    gateway = shared_stack.gateway(1, through=proxy, keepalive=1)
    gateway.wait_connected()
    machine = gateway.machines[0]
    granted_at = time.time()
    gateway.grant(machine, AMINA)
    gateway.amps(machine, WORKING_A)
    gateway.wait_machine(machine, state="running")
    time.sleep(0.3)

    proxy.cut(mode)  # mid-seam
    wait_until("the gateway to see the cut", lambda: not gateway.state()["connected"], 10)
    gateway.amps(machine, 0.0)
    gateway.wait_machine(machine, state="unlocked", relay=True)
    gateway.run_for(machine, 0.4)  # a stretch sensed offline
    gateway.badge_out(machine, AMINA)  # the session ends offline
    assert gateway.state()["backlog"] >= 3, "running_stopped, a stretch and session_ended wait in the journal"
    assert relay_changes(gateway, machine, since=granted_at) == ["on", "off"]

    proxy.restore()
    books = assert_billed_exactly_once(gateway, shared_stack.database_url, timeout=CONVERGE_S, sessions=1)
    (totals,) = books.sensed.sessions.values()
    held_ms = gateway.held[machine].total_s * 1000
    assert abs(totals.running_ms - held_ms) <= RUNNING_TOLERANCE_MS, (totals, held_ms)
    assert_relays_safe(gateway)


def test_network_cut_during_the_replay(shared_stack: Stack) -> None:
    proxy = shared_stack.proxy()
    gateway = shared_stack.gateway(2, through=proxy, running_after_s=0.04, idle_after_s=0.06)
    gateway.wait_connected()
    backlog = gateway.journal_offline(proxy, (AMINA, LUCAS))  # granted, cut off, running, badged out

    # The first ack the server sends cuts the network again: the replay is cut short, and
    # the acks of what the server applied meanwhile never reach the gateway.
    spy = AckSpy(shared_stack.broker.url, gateway.id, on_first=lambda: proxy.cut("drop"))
    try:
        proxy.restore()
        assert spy.wait(1, 15), "the server acknowledged the first replayed event"
        wait_until("the gateway to see the second cut", lambda: not gateway.state()["connected"], 10)
        time.sleep(0.3)
        remaining = gateway.state()["backlog"]
        assert remaining > 0, f"cut mid-replay: {backlog - remaining} of {backlog} acks reached the gateway"
        proxy.restore()
        assert_billed_exactly_once(gateway, shared_stack.database_url, timeout=CONVERGE_S, sessions=2)
    finally:
        spy.close()
    # What the server applied during the first replay came again with the second: acked twice.
    assert spy.count > backlog, f"{spy.count} acks for {backlog} events: no event was delivered twice"
    assert_relays_safe(gateway)

"""kill -9 of the server, mid-session and mid-replay, then a restart: nothing lost, nothing twice.

While the server is dead the broker is up: it accepts (PUBACKs) the gateway's events and
drops them, since nobody subscribes. Those events stay in the gateway's journal until
an EventAck; the contract (docs/protocol.md section 11) lets a server that comes back ask
every gateway to replay (``refresh``), and makes the gateway publish again what is not
acknowledged within a timeout (its backlog check, every 10 s). Either way, the restarted
server must end up with every session exactly as the gateway sensed it, and the machine
must never notice: its relay stays on for the member through the outage.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import Stack
from tests.faults.harness import (
    AMINA,
    LEA,
    LUCAS,
    WORKING_A,
    AckSpy,
    assert_billed_exactly_once,
    assert_relays_safe,
    relay_changes,
)

CONVERGE_S = 15
"""The server's refresh replays at once; the gateway's own resend takes 10-20 s."""
RUNNING_TOLERANCE_MS = 250
"""Sensed running time against the time the test held the current: sampling (20 ms),
the pipe to the gateway process, and a loaded 2-core machine."""


def test_server_killed_mid_session_and_restarted(killable_stack: Stack) -> None:
    _killed_mid_session(killable_stack)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_server_on_postgresql_killed_mid_session_and_restarted(
    stack_factory: Callable[..., Stack], database_url: str
) -> None:
    _killed_mid_session(stack_factory(database_url))


def _killed_mid_session(stack: Stack) -> None:
    gateway = stack.gateway(1)
    gateway.wait_connected()
    machine = gateway.machines[0]
    granted_at = time.time()

    gateway.grant(machine, AMINA)
    gateway.amps(machine, WORKING_A)
    gateway.wait_machine(machine, state="running")
    time.sleep(0.4)
    stack.server.kill()  # the machine is sewing
    time.sleep(0.2)
    gateway.amps(machine, 0.0)  # running_stopped, with nobody to apply it
    gateway.wait_machine(machine, state="unlocked", relay=True)
    gateway.run_for(machine, 0.5)  # a whole running stretch while the server is dead
    gateway.badge_out(machine, AMINA)  # and the end of the session
    assert relay_changes(gateway, machine, since=granted_at) == ["on", "off"], (
        "the relay stayed on for the member through the server's death, and went off at badge-out"
    )

    stack.server.restart()
    books = assert_billed_exactly_once(gateway, stack.database_url, timeout=CONVERGE_S, sessions=1)
    (totals,) = books.sensed.sessions.values()
    assert totals.end_reason == "badge_out"
    held_ms = gateway.held[machine].total_s * 1000
    assert abs(totals.running_ms - held_ms) <= RUNNING_TOLERANCE_MS, (totals, held_ms)
    assert_relays_safe(gateway)


def test_server_killed_mid_replay_and_restarted(killable_stack: Stack) -> None:
    """A backlog of events is replayed after a network cut; the server dies after the first ack."""
    stack = killable_stack
    proxy = stack.proxy()
    gateway = stack.gateway(3, through=proxy, running_after_s=0.04, idle_after_s=0.06)
    gateway.wait_connected()
    backlog = gateway.journal_offline(proxy, (AMINA, LUCAS, LEA))  # granted, cut off, running, badged out

    server = stack.server.process
    assert server is not None
    spy = AckSpy(stack.broker.url, gateway.id, on_first=lambda: _kill(server.pid))
    try:
        proxy.restore()  # the gateway reconnects and replays its backlog...
        assert spy.wait(1, 15), "the server acknowledged the first replayed event"
        server.wait(10)  # ...and the server dies at once
        time.sleep(0.5)
        acked = backlog - gateway.state()["backlog"]
        assert 0 < acked < backlog, f"killed mid-replay: {acked} of {backlog} events acknowledged"
    finally:
        spy.close()

    stack.server.restart()
    assert_billed_exactly_once(gateway, stack.database_url, timeout=CONVERGE_S, sessions=3)
    assert_relays_safe(gateway)


def _kill(pid: int) -> None:
    if pid:
        os.kill(pid, signal.SIGKILL)

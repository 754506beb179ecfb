"""kill -9 of the gateway, mid-session and mid-replay, and a restart on the same state.

Mid-session: the gateway saves an open session's totals in its journal every
``checkpoint_interval_s`` (a checkpoint); a gateway that starts again ends every session
its previous life left open, with ``end_reason`` ``gateway_restart`` and the totals of
the last checkpoint, so the session is billed up to then, and the time the gateway was
down is not billed. A restarted gateway never powers a machine by itself: every relay
stays off until a new grant.

Mid-replay: the restarted gateway replays what the server had not acknowledged, some
of which the server had applied already: applied once.
"""

from __future__ import annotations

import time

from protocol.messages import EventKind
from tests.faults.conftest import Stack
from tests.faults.harness import (
    AMINA,
    LUCAS,
    WORKING_A,
    AckSpy,
    GatewayProcess,
    assert_billed_exactly_once,
    assert_relays_safe,
    journal_events,
    relay_log,
)

CHECKPOINT_S = 0.2
MARGIN_MS = 300
"""Sampling, the pipe to the gateway process and a loaded machine, on top of a checkpoint interval."""


def _all_relays_off(gateway: GatewayProcess) -> None:
    for machine, state in gateway.state()["machines"].items():
        assert not state["relay"], f"{machine}'s relay is on after a restart: {state}"
        assert state["state"] == "locked", state
        assert state["session"] is None, state


def test_gateway_killed_mid_session_ends_it_on_restart(shared_stack: Stack) -> None:
    gateway = shared_stack.gateway(2, checkpoint_interval_s=CHECKPOINT_S)
    gateway.wait_connected()
    sewing, idle = gateway.machines
    started = time.time()
    session = gateway.grant(sewing, AMINA)
    idle_session = gateway.grant(idle, LUCAS)  # powered, not running: open as well
    gateway.amps(sewing, WORKING_A)
    gateway.wait_machine(sewing, state="running")
    time.sleep(0.8)
    before = {e.seq for e, _ in journal_events(gateway.journal_path)}
    gateway.kill()  # mid-seam: the relay's power goes with the process
    killed = time.time()

    gateway.start()
    _all_relays_off(gateway)  # at once, before the link is up...
    gateway.wait_connected()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # ...and after the replay: nothing powers a machine by itself
        _all_relays_off(gateway)
        time.sleep(0.05)

    recovered = {
        event.session_id: event
        for event, _ in journal_events(gateway.journal_path)
        if event.seq not in before and event.kind is EventKind.SESSION_ENDED
    }
    assert set(recovered) == {session, idle_session}, (
        f"the restarted gateway ended the sessions its previous life left open: {recovered}\n{gateway.log_tail()}"
    )
    for event in recovered.values():
        assert event.end_reason == "gateway_restart", event
        lived_ms = (killed - started) * 1000
        assert event.unlocked_ms <= lived_ms + MARGIN_MS, f"the time the gateway was down is billed: {event}"
        assert event.unlocked_ms >= lived_ms - CHECKPOINT_S * 1000 - MARGIN_MS, (
            f"billed up to the last checkpoint, {CHECKPOINT_S} s at most before the kill: {event}"
        )
    sewn = recovered[session]
    held_ms = 0.8 * 1000
    assert sewn.running_ms >= held_ms - CHECKPOINT_S * 1000 - MARGIN_MS, sewn
    assert recovered[idle_session].running_ms == 0

    # A new grant powers the machine again, for a new session.
    again = gateway.grant(sewing, AMINA)
    assert again not in (session, idle_session)
    gateway.run_for(sewing, 0.2)
    gateway.badge_out(sewing, AMINA)
    assert_billed_exactly_once(gateway, shared_stack.database_url, sessions=3)
    assert_relays_safe(gateway)
    boots = [entry for entry in relay_log(gateway) if entry["op"] == "boot"]
    assert [entry["boot"] for entry in boots] == [1, 1, 2, 2]


def test_gateway_killed_mid_replay(shared_stack: Stack) -> None:
    proxy = shared_stack.proxy()
    gateway = shared_stack.gateway(2, through=proxy, running_after_s=0.04, idle_after_s=0.06)
    gateway.wait_connected()
    backlog = gateway.journal_offline(proxy, (AMINA, LUCAS))  # granted, cut off, running, badged out

    process = gateway.process
    assert process is not None
    spy = AckSpy(shared_stack.broker.url, gateway.id, on_first=process.kill)
    try:
        proxy.restore()  # the gateway replays, and dies at the first ack
        assert spy.wait(1, 15), "the server acknowledged the first replayed event"
        process.wait(10)
        gateway.kill()  # the books of the harness: it is dead already
        remaining = sum(1 for _, acked in journal_events(gateway.journal_path) if not acked)
        assert remaining > 0, f"killed mid-replay: {backlog - remaining} of {backlog} acks reached it"

        gateway.start()
        _all_relays_off(gateway)
        books = assert_billed_exactly_once(gateway, shared_stack.database_url, sessions=2)
    finally:
        spy.close()
    assert spy.count >= backlog, "every event acknowledged, some maybe twice"
    assert books.billed.seqs == books.sensed.seqs
    assert_relays_safe(gateway)

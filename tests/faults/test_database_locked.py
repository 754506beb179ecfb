"""The server's database refuses a write for a while: the event must still be billed, once.

With the broker and the server up, a usage event can still fail to be applied: the
database is locked longer than the server waits for it (SQLite's busy timeout, 5 s: a
month close or a backup in another process holding the write lock), or PostgreSQL
restarts. The server then sends no ack, "and the gateway will send the event again"
(server/usage.py): the contract's acknowledgement timeout (docs/protocol.md section 11),
which the gateway implements as its backlog check (every 10 s; an event still
unacknowledged at the next check is published again; 0.5 s here). No connection drops,
so nothing else (a reconnection, the server's refresh when it subscribes) replays it.
"""

from __future__ import annotations

import sqlite3
import time

from tests.faults.conftest import Stack
from tests.faults.harness import AMINA, assert_billed_exactly_once, assert_relays_safe, billed

LOCKED_S = 6.5
"""Longer than the server's SQLite busy timeout (server.db.SQLITE_BUSY_TIMEOUT_MS, 5 s)."""
BACKLOG_CHECK_S = 0.5
CONVERGE_S = 15


def test_an_event_the_locked_database_refused_is_billed_later(shared_stack: Stack) -> None:
    assert shared_stack.database_url.startswith("sqlite:///")
    gateway = shared_stack.gateway(1, backlog_check_s=BACKLOG_CHECK_S)
    gateway.wait_connected()
    machine = gateway.machines[0]
    session = gateway.grant(machine, AMINA)
    gateway.run_for(machine, 0.3)
    gateway.wait_drained(10)

    lock = sqlite3.connect(shared_stack.database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        gateway.badge_out(machine, AMINA)  # session_ended: its ingest waits, then fails
        time.sleep(LOCKED_S)
        assert gateway.state()["backlog"] == 1, "session_ended was not acknowledged"
        assert not billed(shared_stack.database_url, gateway.id).sessions[session].ended  # WAL: reads go on
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    assert_billed_exactly_once(gateway, shared_stack.database_url, timeout=CONVERGE_S, sessions=1)
    assert_relays_safe(gateway)

"""A session's totals only ever grow from one event to the next, or the server bills wrong.

The server keeps, per session, the largest value of each total it has seen
(docs/protocol.md section 11), so that events applied out of order change nothing. That
is exactly once only if each total the gateway reports is non-decreasing along the
session's events: should ``idle_ms`` go down by 1 ms in a later event, the server keeps
the earlier, larger value and bills 1 ms of idle time the gateway never sensed (and its
``unlocked_ms`` is no longer ``running_ms + idle_ms``).

The fault tests meet this when a session ends while the machine runs: the ``gateway_restart``
ending written from a checkpoint, or a clean stop mid-seam. Here it is shown on the pure
session books, with chosen instants, so that it does not depend on the timing of a run.
"""

from __future__ import annotations

import itertools

from controller.session import Session
from protocol.messages import EventKind


def _server_keeps(events: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """The server's rule: the largest value of each total (server/usage.py, ``_greatest``)."""
    return (max(e[0] for e in events), max(e[1] for e in events), max(e[2] for e in events))


def test_totals_never_decrease_while_the_machine_runs() -> None:
    session = Session.open(
        "s-1",
        "sew-1",
        badge="04A1B2C3D4",
        member_id=1,
        supervisor_id=None,
        now=0.0,
        supply=None,
        amps=0.0,
        max_minutes=None,
    )
    session.start_running(0.1004)  # 100.4 ms of idle, then the machine runs
    events = []
    for now in (0.2006, 0.2013, 0.2019, 0.2024, 0.3006, 0.3013):  # checkpoints while it runs
        event = session.event(EventKind.RUNNING_STARTED, now, 0)
        events.append((event.unlocked_ms, event.running_ms, event.idle_ms))
        assert event.unlocked_ms == event.running_ms + event.idle_ms
    for before, after in itertools.pairwise(events):
        assert all(b <= a for b, a in zip(before, after, strict=True)), (
            f"a total went down from {before} to {after} (unlocked, running, idle ms)"
        )
    assert _server_keeps(events) == events[-1], "the server bills the last event's totals"

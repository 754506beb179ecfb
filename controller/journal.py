"""The gateway's durable event journal, in one SQLite file.

Every usage event is written here before it is published, and stays until the
server acknowledges it, so a broker, network or server outage loses no minute:
unacknowledged events are replayed in order when the link returns. The journal
gives each event its ``seq``, strictly increasing for the gateway's lifetime
(across restarts, and across compaction), which is what lets the server apply
each event exactly once. The gateway's boot counter lives in the same file.
"""

import sqlite3
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

import msgspec

from controller.actions import SessionEvent
from protocol.messages import EventKind, UsageEvent, decode, encode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('last_seq', 0), ('boot', 0);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    payload BLOB NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_unacked ON events (seq) WHERE acked = 0;
CREATE TABLE IF NOT EXISTS open_sessions (
    session_id TEXT PRIMARY KEY,
    ending BLOB NOT NULL
);
"""
# open_sessions: for each session not yet ended, the session_ended event that would close
# it with its latest known totals (a checkpoint). A gateway killed mid-session appends
# these when it starts again, so the session is billed up to its last checkpoint.


class Journal:
    """Events waiting for the server's acknowledgement, and the counters that outlive a reboot.

    Thread-safe: the gateway's worker appends and replays, the MQTT thread may ack.
    """

    FILE_NAME = "journal.sqlite3"

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the journal file at ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # isolation_level=None: we open transactions ourselves, so each one is explicit.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=NORMAL: a commit is safe against a crash or kill -9 of the
        # gateway (the WAL is in the OS cache), but is not fsync'ed each time. A Pi's SD
        # card wears out and stalls for tens of milliseconds on every fsync; at one event
        # per state change, an fsync each would cost more card life than it protects.
        # What a power cut can take is the last few events; see ack() for their seqs.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_directory(cls, state_dir: str | Path) -> "Journal":
        """The journal of the gateway whose state directory is ``state_dir``."""
        return cls(Path(state_dir) / cls.FILE_NAME)

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def next_boot(self) -> int:
        """Count one more start of the gateway, and return the new boot number (1, 2, ...)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'boot'")
                boot = self._counter("boot")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return boot

    @property
    def boot(self) -> int:
        with self._lock:
            return self._counter("boot")

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._counter("last_seq")

    def append(self, event: SessionEvent, checkpoint: SessionEvent | None = None) -> UsageEvent:
        """Give ``event`` the next seq and store it durably; returns what to publish.

        An event that does not end its session must come with ``checkpoint``: how the
        session would end were the gateway to die now (:meth:`checkpoint`).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                usage = self._append(event)
                if event.kind is EventKind.SESSION_ENDED:
                    self._db.execute("DELETE FROM open_sessions WHERE session_id = ?", (event.session_id,))
                elif checkpoint is not None:
                    self._checkpoint(checkpoint)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return usage

    def _append(self, event: SessionEvent) -> UsageEvent:
        seq = self._counter("last_seq") + 1
        usage = event.with_seq(seq)
        self._db.execute("UPDATE counters SET value = ? WHERE name = 'last_seq'", (seq,))
        self._db.execute("INSERT INTO events (seq, payload) VALUES (?, ?)", (seq, encode(usage)))
        return usage

    def _checkpoint(self, ending: SessionEvent) -> None:
        # seq 1 is a placeholder: a checkpoint gets its real seq only if it is ever appended.
        self._db.execute(
            "INSERT INTO open_sessions (session_id, ending) VALUES (?, ?)"
            " ON CONFLICT (session_id) DO UPDATE SET ending = excluded.ending",
            (ending.session_id, encode(ending.with_seq(1))),
        )

    def checkpoint(self, endings: list[SessionEvent]) -> None:
        """Save how each open session would end now. Not synced to disk: see the class notes."""
        if not endings:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for ending in endings:
                    self._checkpoint(ending)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def open_sessions(self) -> list[str]:
        """The sessions begun and not ended, by id (a crashed gateway's, before :meth:`recover`)."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT session_id FROM open_sessions ORDER BY rowid")]

    def recover(self) -> list[UsageEvent]:
        """End the sessions a crash left open, each at its last checkpoint; returns the new events.

        Called at start, before any machine is powered: every session then open belonged
        to a gateway that died (a clean stop ends its sessions).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT session_id, ending FROM open_sessions ORDER BY rowid"
                ).fetchall()
                ended = []
                for _, payload in rows:
                    last = decode(UsageEvent, payload)
                    fields = msgspec.structs.asdict(last)
                    del fields["seq"]
                    ended.append(self._append(SessionEvent(**fields)))
                self._db.execute("DELETE FROM open_sessions")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return ended

    def unacked(self, limit: int | None = None) -> list[UsageEvent]:
        """Events the server has not acknowledged, oldest first: what to (re)publish."""
        with self._lock:
            rows = self._db.execute(
                "SELECT payload FROM events WHERE acked = 0 ORDER BY seq LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [decode(UsageEvent, row[0]) for row in rows]

    def backlog(self) -> int:
        """How many events wait for the server's acknowledgement."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events WHERE acked = 0").fetchone()[0])

    def ack(self, seq: int) -> bool:
        """The server has applied event ``seq``; True if it was waiting for that.

        Should a power cut have taken the last events back, the server may ack a
        seq above ours: the counter moves past it, so that seq is never reused
        for another event (the server would drop it as already applied).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                changed = self._db.execute(
                    "UPDATE events SET acked = 1 WHERE seq = ? AND acked = 0", (seq,)
                ).rowcount
                self._db.execute(
                    "UPDATE counters SET value = max(value, ?) WHERE name = 'last_seq'",
                    (seq,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return changed > 0

    def compact(self) -> int:
        """Forget acknowledged events; the seq counter is kept. Returns how many went."""
        with self._lock:
            return self._db.execute("DELETE FROM events WHERE acked = 1").rowcount

    def stored(self) -> int:
        """Events still in the file, acknowledged or not."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

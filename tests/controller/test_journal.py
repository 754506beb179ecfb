"""The event journal: seq numbering that outlives restarts, replay order, acks, compaction."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from controller.actions import SessionEvent
from controller.journal import Journal
from protocol.messages import EventKind


def event(n: int, kind: EventKind = EventKind.RUNNING_STARTED) -> SessionEvent:
    return SessionEvent(
        session_id=f"s{n}", machine="sew-1", kind=kind, at_ms=1_700_000_000_000 + n, running_ms=n * 1000
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / Journal.FILE_NAME


def test_seq_starts_at_one_and_increases(path: Path) -> None:
    with Journal(path) as journal:
        seqs = [journal.append(event(n)).seq for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]


def test_seq_keeps_increasing_across_reopening(path: Path) -> None:
    with Journal(path) as journal:
        journal.append(event(1))
        journal.append(event(2))
    with Journal(path) as journal:
        assert journal.last_seq == 2
        assert journal.append(event(3)).seq == 3


def test_unacked_events_come_back_in_seq_order_with_their_content(path: Path) -> None:
    with Journal(path) as journal:
        stored = [journal.append(event(n)) for n in range(1, 6)]
        journal.ack(2)
    with Journal(path) as journal:
        replay = journal.unacked()
        assert [e.seq for e in replay] == [1, 3, 4, 5]
        assert replay[1] == stored[2]
        assert replay[1].running_ms == 3000
        assert [e.seq for e in journal.unacked(limit=2)] == [1, 3]


def test_ack_and_compaction_keep_the_seq_counter(path: Path) -> None:
    with Journal(path) as journal:
        for n in range(3):
            journal.append(event(n))
        assert journal.ack(1) is True
        assert journal.ack(1) is False, "acknowledged twice: nothing more to do"
        assert journal.ack(3) is True
        assert journal.compact() == 2
        assert journal.stored() == 1
        assert journal.ack(2) is True
        assert journal.compact() == 1
        assert journal.stored() == 0
        assert journal.unacked() == []
    with Journal(path) as journal:
        assert journal.append(event(9)).seq == 4, "a compacted journal never reuses a seq"


def test_an_ack_above_the_counter_moves_it_past(path: Path) -> None:
    # The server applied seqs this journal lost (a power cut): they must never be reused.
    with Journal(path) as journal:
        journal.append(event(1))
        assert journal.ack(7) is False
        assert journal.append(event(2)).seq == 8


def test_the_boot_counter_counts_starts(path: Path) -> None:
    with Journal(path) as journal:
        assert journal.boot == 0
        assert journal.next_boot() == 1
    with Journal(path) as journal:
        assert journal.next_boot() == 2
        assert journal.boot == 2


def test_the_journal_is_wal_without_fsync_per_commit(path: Path) -> None:
    with Journal(path) as journal:
        journal.append(event(1))
        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            db.close()
        synchronous = journal._db.execute("PRAGMA synchronous").fetchone()[0]
        assert synchronous == 1, "NORMAL"


def test_in_directory_places_the_file_in_the_state_directory(tmp_path: Path) -> None:
    with Journal.in_directory(tmp_path / "gw") as journal:
        assert journal.path == tmp_path / "gw" / "journal.sqlite3"
        assert journal.path.exists()


def test_appends_and_acks_from_two_threads(path: Path) -> None:
    with Journal(path) as journal:
        seqs: list[int] = []

        def append_many() -> None:
            for n in range(200):
                seqs.append(journal.append(event(n)).seq)

        writer = threading.Thread(target=append_many)
        writer.start()
        acked = 0
        while writer.is_alive() or acked < 200:
            for pending in journal.unacked(limit=50):
                journal.ack(pending.seq)
                acked += 1
            if not writer.is_alive() and not journal.unacked():
                break
        writer.join()

        assert seqs == list(range(1, 201))
        assert journal.unacked() == []
        assert acked == 200

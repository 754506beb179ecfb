"""Machine utilisation from usage sessions: hours running against hours unlocked, no time-series store."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from protocol.messages import EventKind, UsageEvent
from server.clock import to_ms, utc_now
from server.usage import ingest
from tests.server.conftest import NOW, Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


HOUR_MS = 3_600_000


class Seeded(NamedTuple):
    gateway: str  # "atelier" or "fablab"
    session_id: str
    seq: int  # of the first event
    machine: str
    days: int  # its start, in days after NOW
    unlocked_ms: int
    running_ms: int
    ended: bool


SESSIONS = [
    # Sewing: 3 h unlocked, 2 h running in two sessions from NOW on; one 20 days before.
    Seeded("atelier", "a", 1, "sewing-1", 0, 2 * HOUR_MS, HOUR_MS, True),
    Seeded("atelier", "b", 3, "sewing-1", 3, HOUR_MS, HOUR_MS, True),
    Seeded("atelier", "old", 5, "sewing-1", -20, 10 * HOUR_MS, 10 * HOUR_MS, True),
    # The iron was unlocked and never ran.
    Seeded("atelier", "i", 7, "free-1", 0, HOUR_MS // 10, 0, True),
    # The printer: a session still open, counted with its totals so far.
    Seeded("fablab", "p", 1, "printer-1", 1, HOUR_MS // 2, HOUR_MS // 4, False),
]


def seed(db: Session, shop: Workshop) -> None:
    for row in SESSIONS:
        gateway = shop.gateway if row.gateway == "atelier" else shop.other_gateway
        kinds = (
            [EventKind.SESSION_STARTED, EventKind.SESSION_ENDED] if row.ended else [EventKind.RUNNING_STARTED]
        )
        for offset, kind in enumerate(kinds):
            event = UsageEvent(
                seq=row.seq + offset, session_id=row.session_id, machine=row.machine, kind=kind,
                at_ms=to_ms(NOW + timedelta(days=row.days)), unlocked_ms=row.unlocked_ms,
                running_ms=row.running_ms, idle_ms=row.unlocked_ms - row.running_ms,
            )  # fmt: skip
            assert ingest(db, gateway, event, NOW).ok


def by_machine(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["machine"]: row for row in report["machines"]}


def test_hours_running_against_hours_unlocked_per_machine(
    client: TestClient, db: Session, workshop: Workshop
) -> None:
    seed(db, workshop)
    since, until = NOW - timedelta(days=1), NOW + timedelta(days=27)
    answer = client.get(
        "/api/v1/reports/utilisation", params={"since": since.isoformat(), "until": until.isoformat()}
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert datetime.fromisoformat(report["since"]) == since
    assert datetime.fromisoformat(report["until"]) == until
    machines = by_machine(report)
    assert list(machines) == sorted(machines)  # every machine, by id
    assert set(machines) == {"cutter-1", "free-1", "overlocker-1", "printer-1", "sewing-1"}
    assert machines["sewing-1"] == {
        "machine": "sewing-1",
        "name": "Juki DDL-8700",
        "gateway": "gw-atelier",
        "sessions": 2,
        "running_ms": 2 * HOUR_MS,
        "unlocked_ms": 3 * HOUR_MS,
        "running_hours": 2.0,
        "unlocked_hours": 3.0,
        "utilisation": 0.6667,
    }
    printer = machines["printer-1"]
    assert (printer["sessions"], printer["running_hours"], printer["unlocked_hours"], printer["utilisation"]) == (
        1, 0.25, 0.5, 0.5,
    )  # fmt: skip
    assert (machines["free-1"]["unlocked_hours"], machines["free-1"]["utilisation"]) == (0.1, 0.0)
    # Never unlocked in the period: zeros, and no ratio.
    assert machines["overlocker-1"] == {
        "machine": "overlocker-1",
        "name": "Juki MO-6714S",
        "gateway": "gw-atelier",
        "sessions": 0,
        "running_ms": 0,
        "unlocked_ms": 0,
        "running_hours": 0.0,
        "unlocked_hours": 0.0,
        "utilisation": None,
    }


def test_a_session_counts_in_the_period_it_started_in(
    client: TestClient, db: Session, workshop: Workshop
) -> None:
    seed(db, workshop)
    # [since, until): the session started exactly at NOW + 3 days is in the second period only.
    edge = NOW + timedelta(days=3)
    first = by_machine(
        client.get(
            "/api/v1/reports/utilisation", params={"since": NOW.isoformat(), "until": edge.isoformat()}
        ).json()
    )
    second = by_machine(
        client.get(
            "/api/v1/reports/utilisation",
            params={"since": edge.isoformat(), "until": (edge + timedelta(days=1)).isoformat()},
        ).json()
    )
    assert (first["sewing-1"]["sessions"], first["sewing-1"]["running_ms"]) == (1, HOUR_MS)
    assert (second["sewing-1"]["sessions"], second["sewing-1"]["running_ms"]) == (1, HOUR_MS)


def test_the_default_period_is_the_30_days_up_to_now(client: TestClient, workshop: Workshop) -> None:
    report = client.get("/api/v1/reports/utilisation").json()
    since, until = datetime.fromisoformat(report["since"]), datetime.fromisoformat(report["until"])
    assert until - since == timedelta(days=30)
    assert abs(until - utc_now()) < timedelta(minutes=5)
    assert len(report["machines"]) == 5


def test_a_period_must_run_forwards(client: TestClient, workshop: Workshop) -> None:
    answer = client.get(
        "/api/v1/reports/utilisation", params={"since": NOW.isoformat(), "until": NOW.isoformat()}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == "since must be before until"
    naive = client.get("/api/v1/reports/utilisation", params={"since": "2026-03-01T00:00:00"})
    assert naive.status_code == 422

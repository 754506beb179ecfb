from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from protocol.messages import EventKind, UsageEvent
from server.clock import to_ms
from server.usage import ingest
from tests.server.conftest import NOW, Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def start(
    db: Session, shop: Workshop, session_id: str, *, seq: int, machine: str, minutes: int, badge: str
) -> None:
    gateway = shop.other_gateway if machine == "printer-1" else shop.gateway
    at = to_ms(NOW + timedelta(minutes=minutes))
    event = UsageEvent(
        seq=seq, session_id=session_id, machine=machine, kind=EventKind.SESSION_STARTED, at_ms=at, badge=badge
    )
    assert ingest(db, gateway, event, NOW).ok


def end(db: Session, shop: Workshop, session_id: str, *, seq: int, machine: str, minutes: int) -> None:
    at = to_ms(NOW + timedelta(minutes=minutes))
    event = UsageEvent(
        seq=seq, session_id=session_id, machine=machine, kind=EventKind.SESSION_ENDED, at_ms=at,
        unlocked_ms=60_000, running_ms=30_000, idle_ms=30_000, end_reason="badge_out",
    )  # fmt: skip
    assert ingest(db, shop.gateway, event, NOW).ok


def seed(db: Session, shop: Workshop) -> None:
    start(db, shop, "s-a", seq=1, machine="sewing-1", minutes=0, badge=shop.alice_badge)
    end(db, shop, "s-a", seq=2, machine="sewing-1", minutes=1)
    start(db, shop, "s-b", seq=3, machine="free-1", minutes=5, badge=shop.bob_badge)
    # The fablab gateway numbers its own events: seq 1 again is no repeat.
    start(db, shop, "s-c", seq=1, machine="printer-1", minutes=10, badge=shop.alice_badge)


def test_newest_first_with_filters(client: TestClient, db: Session, workshop: Workshop) -> None:
    seed(db, workshop)
    everything = client.get("/api/v1/sessions").json()
    assert [s["session_id"] for s in everything] == ["s-c", "s-b", "s-a"]
    first = everything[2]
    assert first == {
        "session_id": "s-a",
        "gateway": "gw-atelier",
        "machine": "sewing-1",
        "member_id": workshop.alice,
        "supervisor_id": None,
        "badge_uid": "A1B2C3D4",
        "decided_by": None,
        "started_at": first["started_at"],
        "ended_at": first["ended_at"],
        "unlocked_ms": 60_000,
        "running_ms": 30_000,
        "idle_ms": 30_000,
        "energy_wh": None,
        "end_reason": "badge_out",
        "clock_suspect": False,
        "clock_offset_ms": None,
    }
    assert first["started_at"].startswith("2026-03-02T10:00:00")

    def ids(**params: str | int | bool) -> list[str]:
        return [s["session_id"] for s in client.get("/api/v1/sessions", params=params).json()]

    assert ids(machine="sewing-1") == ["s-a"]
    assert ids(member=workshop.alice) == ["s-c", "s-a"]
    assert ids(open_only=True) == ["s-c", "s-b"]
    assert ids(since="2026-03-02T10:05:00Z") == ["s-c", "s-b"]
    assert ids(since="2026-03-02T11:05:00+01:00") == ["s-c", "s-b"]
    assert ids(limit=1, offset=1) == ["s-b"]
    assert client.get("/api/v1/sessions/s-b").json()["machine"] == "free-1"


def test_errors(client: TestClient, workshop: Workshop) -> None:
    assert client.get("/api/v1/sessions/nope").status_code == 404
    assert client.get("/api/v1/sessions", params={"since": "2026-03-02T10:05:00"}).status_code == 422
    assert client.get("/api/v1/sessions", params={"since": "yesterday"}).status_code == 422
    assert client.get("/api/v1/sessions", params={"limit": 501}).status_code == 422


def test_sessions_recorded_while_the_gateway_clock_was_off_are_flagged(
    client: TestClient, db: Session, workshop: Workshop
) -> None:
    seed(db, workshop)
    # The gateway's clock jumped an hour forward mid-session: a minute of use, an hour apart.
    start(db, workshop, "s-jump", seq=10, machine="sewing-1", minutes=20, badge=workshop.alice_badge)
    end(db, workshop, "s-jump", seq=11, machine="sewing-1", minutes=81)
    jumped = client.get("/api/v1/sessions/s-jump").json()
    assert (jumped["clock_suspect"], jumped["clock_offset_ms"], jumped["unlocked_ms"]) == (True, None, 60_000)
    assert [s["session_id"] for s in client.get("/api/v1/sessions?clock_suspect=true").json()] == ["s-jump"]
    assert "s-jump" not in [
        s["session_id"] for s in client.get("/api/v1/sessions?clock_suspect=false").json()
    ]

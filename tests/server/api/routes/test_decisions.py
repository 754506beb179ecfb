from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from protocol.messages import AccessRequest
from server.access import decide
from server.clock import to_ms
from tests.server.conftest import NOW, Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def tap(db: Session, shop: Workshop, machine: str, badge: str, minutes: int) -> None:
    now = NOW + timedelta(minutes=minutes)
    request = AccessRequest(
        request_id=f"r{minutes}",
        machine=machine,
        badge=badge,
        sent_at_ms=to_ms(now),
        expires_at_ms=to_ms(now),
    )
    decide(db, shop.site, shop.gateway, request, now)


def test_why_was_i_refused(client: TestClient, db: Session, workshop: Workshop) -> None:
    tap(db, workshop, "sewing-1", workshop.bob_badge, 0)
    tap(db, workshop, "free-1", workshop.bob_badge, 1)
    tap(db, workshop, "cutter-1", workshop.bob_badge, 2)
    tap(db, workshop, "sewing-1", workshop.alice_badge, 3)
    bobs = client.get("/api/v1/decisions", params={"member": workshop.bob}).json()
    assert [(d["machine_slug"], d["granted"], d["reason"]) for d in bobs] == [
        ("cutter-1", False, "machine_locked_out"),
        ("free-1", True, "granted"),
        ("sewing-1", False, "not_certified"),
    ]
    last_refusal = client.get(
        "/api/v1/decisions", params={"member": workshop.bob, "granted": False, "limit": 1}
    )
    assert last_refusal.json()[0]["message"] == "Band knife is locked out: blade being replaced"
    assert last_refusal.json()[0]["request_id"] == "r2"
    assert len(client.get("/api/v1/decisions").json()) == 4
    assert len(client.get("/api/v1/decisions", params={"machine": "sewing-1"}).json()) == 2
    assert len(client.get("/api/v1/decisions", params={"since": "2026-03-02T10:02:00Z"}).json()) == 2


def test_errors(client: TestClient) -> None:
    assert client.get("/api/v1/decisions", params={"granted": "maybe"}).status_code == 422
    assert client.get("/api/v1/decisions", params={"offset": -1}).status_code == 422

"""The certification records, read-only here: granting and revoking are under /training, by the rules."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server import workshop as manage
from tests.server.conftest import NOW, Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def test_get_one(client: TestClient, db: Session, workshop: Workshop) -> None:
    certification = manage.grant_certification(
        db, workshop.bob, "fdm-printer", granted_by=workshop.trainer, now=NOW
    )
    db.commit()
    found = client.get(f"/api/v1/certifications/{certification.id}")
    assert found.status_code == 200
    assert found.json() == {
        "id": certification.id,
        "member_id": workshop.bob,
        "skill": "fdm-printer",
        "level": "autonomous",
        "granted_at": found.json()["granted_at"],
        "granted_by": workshop.trainer,
        "expires_at": None,
        "granted_via": "seed",
        "revoked_at": None,
        "revoke_reason": None,
        "lapsed_at": None,
    }
    assert found.json()["granted_at"].startswith("2026-03-02T10:00:00")


def test_list(client: TestClient, db: Session, workshop: Workshop) -> None:
    erins = client.get("/api/v1/certifications", params={"member": workshop.erin}).json()
    assert sorted(c["skill"] for c in erins) == ["industrial-sewing", "overlocker"]
    sewing = client.get("/api/v1/certifications", params={"skill": "industrial-sewing"}).json()
    assert len(sewing) == 5  # alice, carol, dave, erin and the trainer
    manage.revoke_certification(db, erins[0]["id"], reason="left", now=NOW)
    db.commit()
    assert len(client.get("/api/v1/certifications", params={"member": workshop.erin}).json()) == 1
    everything = client.get(
        "/api/v1/certifications", params={"member": workshop.erin, "include_revoked": True}
    )
    assert len(everything.json()) == 2


def test_granting_and_revoking_without_a_caller_is_gone(client: TestClient, workshop: Workshop) -> None:
    # They moved to /api/v1/training, where the caller's token says who certifies.
    body = {"member_id": workshop.bob, "skill": "overlocker", "granted_by": workshop.trainer}
    assert client.post("/api/v1/certifications", json=body).status_code == 405
    assert client.post("/api/v1/certifications/1/revoke", json={"reason": "x"}).status_code in (404, 405)


def test_errors(client: TestClient) -> None:
    assert client.get("/api/v1/certifications/999").status_code == 404
    assert client.get("/api/v1/certifications", params={"skill": "Not A Slug"}).status_code == 422

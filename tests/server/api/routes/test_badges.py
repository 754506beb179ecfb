from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def test_enrol_look_up_and_disable(client: TestClient, workshop: Workshop) -> None:
    enrolled = client.post("/api/v1/badges", json={"uid": "00ff00ff", "member_id": workshop.bob})
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["uid"] == "00FF00FF"
    assert enrolled.json()["active"] is True
    assert client.get("/api/v1/badges/00ff00ff").json() == enrolled.json()
    disabled = client.patch("/api/v1/badges/00FF00FF", json={"active": False})
    assert disabled.status_code == 200
    assert disabled.json()["active"] is False
    bobs = client.get("/api/v1/badges", params={"member": workshop.bob}).json()
    assert [(badge["uid"], badge["active"]) for badge in bobs] == [("B0B00001", True), ("00FF00FF", False)]


def test_errors(client: TestClient, workshop: Workshop) -> None:
    duplicate = client.post("/api/v1/badges", json={"uid": workshop.bob_badge, "member_id": workshop.alice})
    assert duplicate.status_code == 409
    unknown_member = client.post("/api/v1/badges", json={"uid": "12345678", "member_id": 999})
    assert (unknown_member.status_code, unknown_member.json()["detail"]) == (404, "no member 999")
    assert client.get("/api/v1/badges/FFFFFFFF").status_code == 404
    assert client.patch("/api/v1/badges/FFFFFFFF", json={"active": True}).status_code == 404
    assert client.post("/api/v1/badges", json={"uid": "xyz", "member_id": workshop.bob}).status_code == 422
    assert client.get("/api/v1/badges/not-hex").status_code == 422
    assert client.patch("/api/v1/badges/B0B00001", json={}).status_code == 422

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def test_create_get_list(client: TestClient) -> None:
    body = {"slug": "embroidery", "name": "Embroidery machine", "description": "Brother PR1055X"}
    created = client.post("/api/v1/skills", json=body)
    assert created.status_code == 201
    stored: dict[str, object] = {**body, "prerequisites": [], "disuse_months": None}
    assert created.json() == stored
    assert client.get("/api/v1/skills/embroidery").json() == stored
    client.post("/api/v1/skills", json={"slug": "cutting", "name": "Cutting"})
    assert [skill["slug"] for skill in client.get("/api/v1/skills").json()] == ["cutting", "embroidery"]


def test_errors(client: TestClient) -> None:
    assert client.post("/api/v1/skills", json={"slug": "laser", "name": "Laser"}).status_code == 201
    assert client.post("/api/v1/skills", json={"slug": "laser", "name": "Again"}).status_code == 409
    assert client.post("/api/v1/skills", json={"slug": "Laser Cutter", "name": "X"}).status_code == 422
    assert client.get("/api/v1/skills/nothing").status_code == 404
    assert client.get("/api/v1/skills/NOT_A_SLUG").status_code == 422


def test_prerequisites_and_disuse(client: TestClient) -> None:
    client.post("/api/v1/skills", json={"slug": "sewing", "name": "Sewing"})
    created = client.post(
        "/api/v1/skills",
        json={"slug": "overlocker", "name": "Overlocker", "prerequisites": ["sewing"], "disuse_months": 6},
    )
    assert created.status_code == 201, created.text
    assert (created.json()["prerequisites"], created.json()["disuse_months"]) == (["sewing"], 6)
    # Changing one leaves the other; an explicit null removes the disuse period.
    patched = client.patch("/api/v1/skills/overlocker", json={"disuse_months": None}).json()
    assert (patched["prerequisites"], patched["disuse_months"]) == (["sewing"], None)
    patched = client.patch("/api/v1/skills/overlocker", json={"prerequisites": []}).json()
    assert patched["prerequisites"] == []
    listed = client.get("/api/v1/skills").json()
    assert [skill["slug"] for skill in listed] == ["overlocker", "sewing"]


def test_prerequisite_errors(client: TestClient) -> None:
    client.post("/api/v1/skills", json={"slug": "a", "name": "A"})
    client.post("/api/v1/skills", json={"slug": "b", "name": "B", "prerequisites": ["a"]})
    cycle = client.patch("/api/v1/skills/a", json={"prerequisites": ["b"]})
    assert cycle.status_code == 422
    assert "would require itself" in cycle.json()["detail"]
    assert client.patch("/api/v1/skills/a", json={"prerequisites": ["a"]}).status_code == 422
    assert (
        client.post("/api/v1/skills", json={"slug": "c", "name": "C", "prerequisites": ["zz"]}).status_code
        == 404
    )
    assert (
        client.post("/api/v1/skills", json={"slug": "d", "name": "D", "disuse_months": 0}).status_code == 422
    )
    assert client.patch("/api/v1/skills/nothing", json={}).status_code == 404

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def test_register_defaults_to_this_site(client: TestClient, site_id: str) -> None:
    created = client.post("/api/v1/gateways", json={"slug": "gw-textile", "name": "Textile room"})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "slug": "gw-textile",
        "site": site_id,
        "name": "Textile room",
        "state": "unknown",
        "boot": 0,
        "software": "",
        "last_seen_at": None,
        "machines": [],
    }
    assert client.get("/api/v1/gateways/gw-textile").json() == created.json()


def test_list_with_state_and_machines(client: TestClient, workshop: Workshop) -> None:
    gateways = client.get("/api/v1/gateways").json()
    assert [(g["slug"], g["state"], g["machines"]) for g in gateways] == [
        ("gw-atelier", "unknown", ["cutter-1", "free-1", "overlocker-1", "sewing-1"]),
        ("gw-fablab", "unknown", ["printer-1"]),
    ]
    assert client.get("/api/v1/gateways", params={"state": "online"}).json() == []
    assert client.get("/api/v1/gateways", params={"site": "elsewhere"}).json() == []


def test_errors(client: TestClient, workshop: Workshop) -> None:
    assert client.post("/api/v1/gateways", json={"slug": workshop.gateway}).status_code == 409
    assert client.post("/api/v1/gateways", json={"slug": "GW 1"}).status_code == 422
    assert client.get("/api/v1/gateways/gw-nowhere").status_code == 404
    assert client.get("/api/v1/gateways", params={"state": "sleeping"}).status_code == 422

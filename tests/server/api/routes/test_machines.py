from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def test_create_with_required_skills(client: TestClient, workshop: Workshop) -> None:
    body = {
        "slug": "coverstitch-1",
        "name": "Juki MF-7523",
        "machine_class": "coverstitch",
        "gateway": workshop.gateway,
        "required_skills": ["overlocker", "industrial-sewing"],
    }
    created = client.post("/api/v1/machines", json=body)
    assert created.status_code == 201, created.text
    assert created.json() == {
        **body,
        "required_skills": ["industrial-sewing", "overlocker"],
        "locked_out": False,
        "lockout_reason": None,
        "second_factor": False,
    }
    assert client.get("/api/v1/machines/coverstitch-1").json() == created.json()


def test_list_and_filter_by_gateway(client: TestClient, workshop: Workshop) -> None:
    machines = client.get("/api/v1/machines").json()
    assert [m["slug"] for m in machines] == ["cutter-1", "free-1", "overlocker-1", "printer-1", "sewing-1"]
    fablab = client.get("/api/v1/machines", params={"gateway": workshop.other_gateway}).json()
    assert [(m["slug"], m["gateway"], m["required_skills"]) for m in fablab] == [
        ("printer-1", "gw-fablab", ["fdm-printer"])
    ]


def test_lockout_on_and_off(client: TestClient, workshop: Workshop) -> None:
    on = client.patch(
        "/api/v1/machines/sewing-1/lockout", json={"locked_out": True, "reason": "needle broken"}
    )
    assert on.status_code == 200
    assert (on.json()["locked_out"], on.json()["lockout_reason"]) == (True, "needle broken")
    off = client.patch("/api/v1/machines/sewing-1/lockout", json={"locked_out": False})
    assert (off.json()["locked_out"], off.json()["lockout_reason"]) == (False, None)


def test_second_factor_on_and_off(client: TestClient, workshop: Workshop) -> None:
    assert client.get("/api/v1/machines/sewing-1").json()["second_factor"] is False
    on = client.patch("/api/v1/machines/sewing-1/second-factor", json={"second_factor": True})
    assert on.status_code == 200, on.text
    assert on.json()["second_factor"] is True
    assert client.get("/api/v1/machines/sewing-1").json()["second_factor"] is True
    off = client.patch("/api/v1/machines/sewing-1/second-factor", json={"second_factor": False})
    assert off.json()["second_factor"] is False
    assert (
        client.patch("/api/v1/machines/nothing-here/second-factor", json={"second_factor": True}).status_code
        == 404
    )
    assert client.patch("/api/v1/machines/sewing-1/second-factor", json={}).status_code == 422
    created = client.post(
        "/api/v1/machines",
        json={"slug": "laser-1", "name": "Laser", "machine_class": "laser", "second_factor": True},
    )
    assert created.status_code == 201, created.text
    assert created.json()["second_factor"] is True


def test_errors(client: TestClient, workshop: Workshop) -> None:
    base = {"slug": "m-1", "name": "M", "machine_class": "sewing"}
    assert client.post("/api/v1/machines", json={**base, "slug": "sewing-1"}).status_code == 409
    unknown_skill = client.post("/api/v1/machines", json={**base, "required_skills": ["juggling"]})
    assert (unknown_skill.status_code, unknown_skill.json()["detail"]) == (404, "no skill juggling")
    assert client.post("/api/v1/machines", json={**base, "gateway": "gw-nowhere"}).status_code == 404
    assert client.post("/api/v1/machines", json={**base, "slug": "M 1"}).status_code == 422
    assert client.post("/api/v1/machines", json={"slug": "m-2"}).status_code == 422
    assert client.get("/api/v1/machines/nothing-here").status_code == 404
    assert (
        client.patch("/api/v1/machines/nothing-here/lockout", json={"locked_out": False}).status_code == 404
    )
    # Members read the reason on the reader: a lockout must give one.
    assert client.patch("/api/v1/machines/sewing-1/lockout", json={"locked_out": True}).status_code == 422
    assert client.get("/api/v1/machines").status_code == 200  # nothing half-made by the failures
    assert len(client.get("/api/v1/machines").json()) == 5

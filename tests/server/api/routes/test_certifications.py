from __future__ import annotations

from fastapi.testclient import TestClient

from tests.server.conftest import Workshop


def test_grant_get_and_revoke(client: TestClient, workshop: Workshop) -> None:
    body = {
        "member_id": workshop.bob,
        "skill": "fdm-printer",
        "level": "supervised",
        "granted_by": workshop.trainer,
        "expires_at": "2027-01-01T00:00:00+01:00",
    }
    granted = client.post("/api/v1/certifications", json=body)
    assert granted.status_code == 201, granted.text
    certification = granted.json()
    assert certification["skill"] == "fdm-printer"
    assert certification["level"] == "supervised"
    assert certification["granted_by"] == workshop.trainer
    assert certification["expires_at"] in ("2026-12-31T23:00:00Z", "2026-12-31T23:00:00+00:00")
    assert certification["revoked_at"] is None
    assert client.get(f"/api/v1/certifications/{certification['id']}").json() == certification

    revoked = client.post(f"/api/v1/certifications/{certification['id']}/revoke", json={"reason": "left"})
    assert revoked.status_code == 200
    assert revoked.json()["revoke_reason"] == "left"
    assert revoked.json()["revoked_at"] is not None
    again = client.post(f"/api/v1/certifications/{certification['id']}/revoke", json={})
    assert again.status_code == 409


def test_list(client: TestClient, workshop: Workshop) -> None:
    erins = client.get("/api/v1/certifications", params={"member": workshop.erin}).json()
    assert sorted(c["skill"] for c in erins) == ["industrial-sewing", "overlocker"]
    sewing = client.get("/api/v1/certifications", params={"skill": "industrial-sewing"}).json()
    assert len(sewing) == 4
    client.post(f"/api/v1/certifications/{erins[0]['id']}/revoke", json={})
    assert len(client.get("/api/v1/certifications", params={"member": workshop.erin}).json()) == 1
    everything = client.get(
        "/api/v1/certifications", params={"member": workshop.erin, "include_revoked": True}
    )
    assert len(everything.json()) == 2


def test_errors(client: TestClient, workshop: Workshop) -> None:
    ok = {"member_id": workshop.bob, "skill": "overlocker"}
    assert client.post("/api/v1/certifications", json={**ok, "member_id": 999}).status_code == 404
    assert client.post("/api/v1/certifications", json={**ok, "skill": "juggling"}).status_code == 404
    assert client.post("/api/v1/certifications", json={**ok, "granted_by": 999}).status_code == 404
    assert client.post("/api/v1/certifications", json={**ok, "level": "master"}).status_code == 422
    naive = client.post("/api/v1/certifications", json={**ok, "expires_at": "2027-01-01T00:00:00"})
    assert naive.status_code == 422
    assert client.get("/api/v1/certifications/999").status_code == 404
    assert client.post("/api/v1/certifications/999/revoke", json={}).status_code == 404

from __future__ import annotations

from fastapi.testclient import TestClient


def test_create_get_list(client: TestClient) -> None:
    body = {"slug": "embroidery", "name": "Embroidery machine", "description": "Brother PR1055X"}
    created = client.post("/api/v1/skills", json=body)
    assert created.status_code == 201
    assert created.json() == body
    assert client.get("/api/v1/skills/embroidery").json() == body
    client.post("/api/v1/skills", json={"slug": "cutting", "name": "Cutting"})
    assert [skill["slug"] for skill in client.get("/api/v1/skills").json()] == ["cutting", "embroidery"]


def test_errors(client: TestClient) -> None:
    assert client.post("/api/v1/skills", json={"slug": "laser", "name": "Laser"}).status_code == 201
    assert client.post("/api/v1/skills", json={"slug": "laser", "name": "Again"}).status_code == 409
    assert client.post("/api/v1/skills", json={"slug": "Laser Cutter", "name": "X"}).status_code == 422
    assert client.get("/api/v1/skills/nothing").status_code == 404
    assert client.get("/api/v1/skills/NOT_A_SLUG").status_code == 422

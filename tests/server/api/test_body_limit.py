"""A request body over the limit is refused with 413 before anything reads it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.api.limits import MAX_BODY_BYTES


def test_an_oversized_body_is_refused_and_a_normal_one_is_not(client: TestClient) -> None:
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    refused = client.post("/api/v1/auth/login", content=big, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413
    assert "over" in refused.json()["detail"]
    normal = client.post("/api/v1/auth/login", json={"login": "nobody@example.org", "password": "x" * 12})
    assert normal.status_code in (400, 401, 422)

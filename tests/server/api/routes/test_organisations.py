"""/api/v1/organisations and /api/v1/partner-members, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.models import AuditEntry, Member, Organisation
from tests.server.billing_db.conftest import settings
from tests.server.conftest import Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_clock(app: FastAPI) -> None:
    app.state.clock = lambda: NOW


def test_an_organisation_pays_for_its_members(client: TestClient, workshop: Workshop, db: Session) -> None:
    assert (
        client.post("/api/v1/price-lists", json={"code": "member", "name": "Partenaires"}).status_code == 201
    )
    made = client.post(
        "/api/v1/organisations",
        json={"name": "Lycée", "address": ["1 rue de l'École", "69001 Lyon"], "email": "a@example.org",
              "price_list": "member"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    school = made.json()
    assert (school["address"], school["price_list"], school["members"]) == (
        ["1 rue de l'École", "69001 Lyon"], "member", [],
    )  # fmt: skip
    members = f"/api/v1/organisations/{school['id']}/members"
    attached = client.put(f"{members}/{workshop.alice}")
    assert attached.status_code == 200, attached.text
    assert attached.json()["members"] == [{"id": workshop.alice, "name": "Alice Martin"}]
    assert client.get(f"/api/v1/organisations/{school['id']}").json() == attached.json()
    assert client.get("/api/v1/organisations").json() == [attached.json()]
    db.rollback()
    assert db.get(Member, workshop.alice).organisation_id == school["id"]  # type: ignore[union-attr]

    before = db.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) or 0
    other = client.post("/api/v1/organisations", json={"name": "Coop"}).json()
    assert other["price_list"] is None  # the default list
    for method, url, code, detail in [
        ("PUT", f"{members}/{workshop.alice}", 409, "pays for member"),
        (
            "PUT",
            f"/api/v1/organisations/{other['id']}/members/{workshop.alice}",
            409,
            "detach them from it first",
        ),
        ("PUT", f"/api/v1/organisations/999/members/{workshop.bob}", 404, "no organisation 999"),
        ("PUT", f"{members}/999", 404, "no member 999"),
        ("DELETE", f"{members}/{workshop.bob}", 404, "not paid for by organisation"),
        ("DELETE", f"/api/v1/organisations/{other['id']}/members/{workshop.alice}", 404, "not paid for by"),
        ("GET", "/api/v1/organisations/999", 404, "no organisation 999"),
    ]:
        answer = client.request(method, url)
        assert answer.status_code == code, (url, answer.text)
        assert detail in answer.json()["detail"], (url, answer.text)
    for body, code, detail in [
        ({"name": "X", "price_list": "nope"}, 404, "no price list 'nope'"),
        ({"name": ""}, 422, "at least 1 character"),
        ({"name": "X", "email": "nobody"}, 422, "should match pattern"),
    ]:
        answer = client.post("/api/v1/organisations", json=body)
        assert answer.status_code == code, (body, answer.text)
        assert detail in str(answer.json()["detail"])
    db.rollback()
    assert db.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == before + 1  # the Coop
    assert db.scalar(sa.select(sa.func.count()).select_from(Organisation)) == 2

    detached = client.delete(f"{members}/{workshop.alice}")
    assert detached.status_code == 200, detached.text
    assert detached.json()["members"] == []


def test_partner_members(client: TestClient, workshop: Workshop, db: Session) -> None:
    partner = f"/api/v1/partner-members/{workshop.erin}"
    unconfigured = client.put(partner, json={"association": "Les Fils"})
    assert unconfigured.status_code == 409
    assert "billing settings are missing" in unconfigured.json()["detail"]
    db.add(settings())
    db.commit()
    no_list = client.put(partner, json={"association": "Les Fils"})
    assert (no_list.status_code, no_list.json()["detail"]) == (
        404, "no price list 'member': add it first (atelier billing price-list add)",
    )  # fmt: skip
    client.post("/api/v1/price-lists", json={"code": "member", "name": "Partenaires"})
    done = client.put(partner, json={"association": "Les Fils"})
    assert done.status_code == 200, done.text
    assert done.json() == {"member_id": workshop.erin, "name": "Erin Laurent", "association": "Les Fils"}
    assert client.get("/api/v1/partner-members").json() == [done.json()]
    assert client.put(partner, json={"association": "Les Fils"}).status_code == 409
    assert client.put(partner, json={"association": " "}).status_code == 422
    assert client.put("/api/v1/partner-members/999", json={"association": "X"}).status_code == 404
    cleared = client.delete(partner)
    assert cleared.status_code == 200
    assert cleared.json()["association"] is None
    assert client.delete(partner).status_code == 404
    assert client.get("/api/v1/partner-members").json() == []

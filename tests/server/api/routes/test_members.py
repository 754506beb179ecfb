from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.models import AuditEntry, Member
from tests.server.conftest import Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def test_create_get_and_list(client: TestClient, staff: int) -> None:
    created = client.post("/api/v1/members", json={"name": " Inès Roux ", "email": "ines@example.org"})
    assert created.status_code == 201, created.text
    member = created.json()
    assert member["name"] == "Inès Roux"
    assert member["email"] == "ines@example.org"
    assert member["status"] == "active"
    assert member["created_at"].endswith(("Z", "+00:00"))
    assert client.get(f"/api/v1/members/{member['id']}").json() == member
    assert [m["name"] for m in client.get("/api/v1/members").json()] == ["Inès Roux", "Sam Staff"]
    assert client.get("/api/v1/members").json()[0] == member


def test_create_with_a_badge(client: TestClient) -> None:
    member = client.post("/api/v1/members", json={"name": "Jo", "badge": "0a0b0c0d"}).json()
    badges = client.get("/api/v1/badges", params={"member": member["id"]}).json()
    assert [badge["uid"] for badge in badges] == ["0A0B0C0D"]


def test_list_filters_and_pages(client: TestClient, workshop: Workshop) -> None:
    suspended = client.get("/api/v1/members", params={"status": "suspended"}).json()
    assert [member["id"] for member in suspended] == [workshop.carol]
    everyone = client.get("/api/v1/members").json()
    assert len(everyone) == 7  # and Sam Staff, who calls
    page = client.get("/api/v1/members", params={"limit": 2, "offset": 1}).json()
    assert page == everyone[1:3]


def test_suspend_and_edit(client: TestClient, workshop: Workshop) -> None:
    response = client.patch(
        f"/api/v1/members/{workshop.bob}", json={"status": "suspended", "email": "b@x.fr"}
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["email"]) == ("suspended", "b@x.fr")
    cleared = client.patch(f"/api/v1/members/{workshop.bob}", json={"email": None}).json()
    assert (cleared["email"], cleared["status"]) == (None, "suspended")


def test_unknown_member_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/members/4242")
    assert response.status_code == 404
    assert response.json() == {"detail": "no member 4242"}
    assert client.patch("/api/v1/members/4242", json={"name": "X"}).status_code == 404


def test_bad_input_is_422(client: TestClient) -> None:
    for body in ({}, {"name": ""}, {"name": "X", "email": "not-an-email"}, {"name": "X", "badge": "zz"},
                 {"name": "X", "unexpected": 1}):  # fmt: skip
        assert client.post("/api/v1/members", json=body).status_code == 422, body
    assert client.get("/api/v1/members", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/members/abc").status_code == 422


def test_a_badge_already_enrolled_is_409(client: TestClient, workshop: Workshop) -> None:
    response = client.post("/api/v1/members", json={"name": "Copycat", "badge": workshop.alice_badge.lower()})
    assert response.status_code == 409
    assert response.json() == {"detail": "badge A1B2C3D4 is already enrolled"}
    assert len(client.get("/api/v1/members").json()) == 7  # the member was not created either


def test_every_change_is_in_the_audit_trail_without_personal_values(
    client: TestClient, workshop: Workshop, db: Session, staff: int
) -> None:
    made = client.post(
        "/api/v1/members", json={"name": "Jo Leroy", "email": "jo@x.fr", "badge": "0a0b0c0d"}
    ).json()
    changed = client.patch(
        f"/api/v1/members/{made['id']}",
        json={"name": "Jo Leroy-Petit", "email": None, "address": ["3 rue des Lilas", "", "69001 Lyon"]},
    )
    assert changed.status_code == 200, changed.text
    assert client.patch(f"/api/v1/members/{made['id']}", json={"status": "suspended"}).status_code == 200
    assert client.patch(f"/api/v1/members/{made['id']}", json={"status": "suspended"}).status_code == 200
    db.rollback()
    assert db.get(Member, made["id"]).address == "3 rue des Lilas\n69001 Lyon"  # type: ignore[union-attr]
    entries = db.scalars(
        sa.select(AuditEntry).where(AuditEntry.actor_id == staff).order_by(AuditEntry.id)
    ).all()
    assert [(e.action, e.subject_type, e.details) for e in entries] == [
        ("member.create", "member", {"status": "active"}),
        ("badge.enrol", "badge", {"member_id": made["id"]}),
        ("member.update", "member", {"changed": ["name", "email", "address"]}),
        ("member.status", "member", {"before": "active", "after": "suspended"}),
    ]
    trail = str([(e.details, e.subject_id) for e in entries])
    assert "Jo" not in trail
    assert "0A0B0C0D" not in trail

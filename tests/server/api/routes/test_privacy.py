"""GET /me/export, GET /members/{id}/export and POST /members/{id}/erase, on both databases."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.models import AuditEntry, Member
from tests.server.api.conftest import bearer
from tests.server.conftest import NOW, Workshop
from tests.server.test_supervision import tap


def test_a_member_downloads_their_data(client: TestClient, db: Session, workshop: Workshop) -> None:
    tap(db, workshop, "sewing-1", workshop.alice_badge, NOW)
    answer = client.get("/api/v1/me/export", headers=bearer(db, workshop.alice))
    assert answer.status_code == 200
    assert (
        answer.headers["content-disposition"]
        == f'attachment; filename="atelier-member-{workshop.alice}.json"'
    )
    data = answer.json()
    assert data["member"]["name"] == "Alice Martin"
    assert "password_hash" not in data["member"]
    assert [d["granted"] for d in data["access_decisions"]] == [True]
    assert data["badges"][0]["uid"] == workshop.alice_badge
    # Their own, not someone else's.
    bobs = client.get("/api/v1/me/export", headers=bearer(db, workshop.bob)).json()
    assert (bobs["member"]["id"], bobs["access_decisions"]) == (workshop.bob, [])


def test_a_manager_exports_and_erases(
    client: TestClient, app: FastAPI, db: Session, workshop: Workshop, staff: int
) -> None:
    app.state.clock = lambda: NOW + timedelta(days=1)
    headers = bearer(db, staff)
    exported = client.get(f"/api/v1/members/{workshop.bob}/export", headers=headers)
    assert (exported.status_code, exported.json()["member"]["name"]) == (200, "Bob Durand")
    assert client.get("/api/v1/members/999999/export", headers=headers).status_code == 404
    erased = client.post(f"/api/v1/members/{workshop.bob}/erase", headers=headers)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "member_id": workshop.bob,
        "badges": 1,
        "mandates": 0,
        "tokens": 0,
        "sessions": 0,
    }
    bob = client.get(f"/api/v1/members/{workshop.bob}", headers=headers).json()
    assert (bob["name"], bob["email"], bob["status"]) == (f"erased member {workshop.bob}", None, "suspended")
    assert bob["erased_at"].startswith("2026-03-03T10:00:00")
    again = client.post(f"/api/v1/members/{workshop.bob}/erase", headers=headers)
    assert (again.status_code, again.json()["detail"]) == (
        409,
        f"member {workshop.bob} was erased: their record no longer changes",
    )
    frozen = client.patch(f"/api/v1/members/{workshop.bob}", json={"name": "Bob"}, headers=headers)
    assert frozen.status_code == 409
    assert client.post("/api/v1/members/999999/erase", headers=headers).status_code == 404
    themself = client.post(f"/api/v1/members/{staff}/erase", headers=headers)
    assert (themself.status_code, themself.json()["detail"]) == (
        409,
        "a manager does not erase themself: ask another manager",
    )
    db.rollback()
    entry = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "member.erase")).one()
    assert (entry.actor_id, entry.subject_id) == (staff, str(workshop.bob))
    member = db.get(Member, workshop.bob)
    assert member is not None
    assert member.erased_at is not None


def test_erasure_says_what_to_settle_first(
    client: TestClient, db: Session, workshop: Workshop, staff: int
) -> None:
    from server.models import Gateway, Machine, UsageSession  # noqa: PLC0415

    machine = db.scalars(sa.select(Machine).where(Machine.slug == "sewing-1")).one()
    gateway = db.scalars(sa.select(Gateway).where(Gateway.slug == workshop.gateway)).one()
    db.add(
        UsageSession(
            session_id="open-one", gateway_id=gateway.id, machine_id=machine.id, member_id=workshop.alice,
            started_at=NOW, last_event_seq=1,
        )
    )  # fmt: skip
    db.commit()
    refused = client.post(f"/api/v1/members/{workshop.alice}/erase", headers=bearer(db, staff))
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"member {workshop.alice} cannot be erased yet: a usage session is still open (open-one)"
    )

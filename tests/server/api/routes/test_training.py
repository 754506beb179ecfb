"""The trainers' API: who may certify and revoke, their trainees, what expires soon; 401 and 403."""

from __future__ import annotations

from datetime import timedelta

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server import workshop as manage
from server.auth.policy import BAD_TOKEN, NOT_SIGNED_IN
from server.auth.scopes import EVERY_SCOPE
from server.auth.tokens import create_token, revoke_token
from server.models import Certification
from tests.server.api.conftest import bearer
from tests.server.conftest import NOW, Workshop

LATER = NOW + timedelta(days=1)
Headers = dict[str, str]


@pytest.fixture
def as_(app: FastAPI, db: Session, workshop: Workshop) -> dict[str, Headers]:
    """Request headers acting as each of the workshop's people, at a fixed time."""
    app.state.clock = lambda: LATER
    manager = manage.add_member(db, "Manon Manager", now=NOW)
    manage.set_member_roles(db, manager.id, manager=True)
    db.commit()
    return {
        "trainer": bearer(db, workshop.trainer),
        "alice": bearer(db, workshop.alice),
        "bob": bearer(db, workshop.bob),
        "manager": bearer(db, manager.id),
    }


def test_every_training_route_needs_a_token(client: TestClient, db: Session, workshop: Workshop) -> None:
    routes = [
        ("post", "/api/v1/training/certifications"),
        ("post", "/api/v1/training/certifications/1/revoke"),
        ("get", "/api/v1/training/certifications/1/events"),
        ("get", "/api/v1/training/trainees"),
        ("get", "/api/v1/training/expiring"),
        ("get", "/api/v1/me"),
        ("get", "/api/v1/me/certifications"),
        ("get", "/api/v1/me/decisions"),
    ]
    revoked = create_token(db, workshop.trainer, scopes=EVERY_SCOPE, now=NOW)
    revoke_token(db, revoked.id, now=NOW)
    db.commit()
    for method, path in routes:
        missing = client.request(method, path, json={})
        assert missing.status_code == 401, path
        assert missing.json()["detail"] == NOT_SIGNED_IN
        assert missing.headers["www-authenticate"] == "Bearer"
        unknown = client.request(method, path, json={}, headers={"Authorization": "Bearer atl_nope"})
        assert unknown.status_code == 401
        assert unknown.json()["detail"] == BAD_TOKEN
        gone = client.request(method, path, json={}, headers={"Authorization": f"Bearer {revoked.token}"})
        assert gone.status_code == 401
    basic = client.get("/api/v1/me", headers={"Authorization": "Basic dGVzczp4"})
    assert basic.status_code == 401


def test_a_trainer_certifies(client: TestClient, as_: dict[str, Headers], workshop: Workshop) -> None:
    body = {
        "member_id": workshop.bob,
        "skill": "industrial-sewing",
        "level": "supervised",
        "expires_at": "2027-01-01T00:00:00+01:00",
        "note": "first session",
    }
    response = client.post("/api/v1/training/certifications", json=body, headers=as_["trainer"])
    assert response.status_code == 201, response.text
    made = response.json()
    assert {
        key: made[key] for key in ("member_id", "member_name", "skill", "skill_name", "level", "status")
    } == {
        "member_id": workshop.bob,
        "member_name": "Bob Durand",
        "skill": "industrial-sewing",
        "skill_name": "Industrial sewing",
        "level": "supervised",
        "status": "valid",
    }
    assert (made["granted_by"], made["granted_by_name"], made["granted_via"]) == (
        workshop.trainer,
        "Tess Trainer",
        "web",
    )
    assert made["granted_at"].startswith("2026-03-03T10:00:00")
    assert made["expires_at"].startswith("2026-12-31T23:00:00")
    assert made["ends_at"] == made["expires_at"]
    assert (made["disuse_deadline"], made["expired_by_disuse"], made["revoked_at"]) == (None, False, None)
    history = client.get(f"/api/v1/training/certifications/{made['id']}/events", headers=as_["bob"])
    assert [(e["kind"], e["actor_id"], e["via"], e["reason"]) for e in history.json()] == [
        ("granted", workshop.trainer, "web", "first session")
    ]


def test_role_rules_are_403_with_a_reason(
    client: TestClient, as_: dict[str, Headers], workshop: Workshop
) -> None:
    sewing = {"member_id": workshop.bob, "skill": "industrial-sewing"}
    not_trainer = client.post("/api/v1/training/certifications", json=sewing, headers=as_["alice"])
    assert not_trainer.status_code == 403
    assert not_trainer.json()["detail"] == "This needs one of the roles trainer, manager."
    self_made = client.post(
        "/api/v1/training/certifications",
        json={"member_id": workshop.trainer, "skill": "fdm-printer"},
        headers=as_["trainer"],
    )
    assert self_made.status_code == 403
    assert self_made.json()["detail"] == "Nobody certifies themself: ask another trainer or a manager."
    other_skill = client.post(
        "/api/v1/training/certifications", json={**sewing, "skill": "fdm-printer"}, headers=as_["trainer"]
    )
    assert other_skill.status_code == 403
    assert other_skill.json()["detail"] == (
        "Tess Trainer is not a trainer for FDM printer: only its trainers or a manager certify or revoke in it."
    )
    by_manager = client.post(
        "/api/v1/training/certifications", json={**sewing, "skill": "fdm-printer"}, headers=as_["manager"]
    )
    assert by_manager.status_code == 201


def test_conflicts_and_bad_values(
    client: TestClient, as_: dict[str, Headers], db: Session, workshop: Workshop
) -> None:
    manage.set_skill_training(db, "overlocker", prerequisites=["industrial-sewing"])
    db.commit()

    def post(body: dict[str, object]) -> httpx.Response:
        return client.post("/api/v1/training/certifications", json=body, headers=as_["trainer"])

    missing = post({"member_id": workshop.bob, "skill": "overlocker"})
    assert missing.status_code == 409
    assert missing.json()["detail"] == "Bob Durand must first hold Industrial sewing before Overlocker."
    held = post({"member_id": workshop.alice, "skill": "industrial-sewing"})
    assert held.status_code == 409
    assert "already holds Industrial sewing at the autonomous level" in held.json()["detail"]
    assert post({"member_id": workshop.carol, "skill": "overlocker"}).status_code == 409  # suspended
    assert post({"member_id": 999, "skill": "overlocker"}).status_code == 404
    assert post({"member_id": workshop.bob, "skill": "juggling"}).status_code == 404
    assert (
        post({"member_id": workshop.bob, "skill": "industrial-sewing", "level": "master"}).status_code == 422
    )
    naive = {"member_id": workshop.bob, "skill": "industrial-sewing", "expires_at": "2027-01-01T00:00:00"}
    assert post(naive).status_code == 422
    past = {"member_id": workshop.bob, "skill": "industrial-sewing", "expires_at": "2026-01-01T00:00:00Z"}
    assert post(past).status_code == 422
    extra = {"member_id": workshop.bob, "skill": "industrial-sewing", "granted_by": workshop.trainer}
    assert post(extra).status_code == 422  # the granter is the caller, not a field


def test_revoke(client: TestClient, as_: dict[str, Headers], db: Session, workshop: Workshop) -> None:
    made = client.post(
        "/api/v1/training/certifications",
        json={"member_id": workshop.bob, "skill": "industrial-sewing"},
        headers=as_["trainer"],
    ).json()
    path = f"/api/v1/training/certifications/{made['id']}/revoke"
    assert client.post(path, json={}, headers=as_["trainer"]).status_code == 422
    assert client.post(path, json={"reason": "   "}, headers=as_["trainer"]).status_code == 422
    forbidden = client.post(path, json={"reason": "no"}, headers=as_["alice"])
    assert forbidden.status_code == 403
    assert client.post(path, json={"reason": "no"}, headers=as_["bob"]).status_code == 403  # not a trainer
    hers = db.scalars(sa.select(Certification.id).where(Certification.member_id == workshop.trainer)).first()
    own = client.post(
        f"/api/v1/training/certifications/{hers}/revoke", json={"reason": "no"}, headers=as_["trainer"]
    )
    assert own.status_code == 403
    assert own.json()["detail"] == "Nobody revokes their own certification: ask another trainer or a manager."
    revoked = client.post(path, json={"reason": "unsafe use of the knife"}, headers=as_["trainer"])
    assert revoked.status_code == 200
    assert (revoked.json()["status"], revoked.json()["revoke_reason"]) == (
        "revoked",
        "unsafe use of the knife",
    )
    assert client.post(path, json={"reason": "again"}, headers=as_["manager"]).status_code == 409
    assert (
        client.post(
            "/api/v1/training/certifications/999/revoke", json={"reason": "x"}, headers=as_["manager"]
        ).status_code
        == 404
    )
    history = client.get(
        f"/api/v1/training/certifications/{made['id']}/events", headers=as_["trainer"]
    ).json()
    assert [e["kind"] for e in history] == ["granted", "revoked"]


def test_history_is_for_the_member_trainers_and_managers(
    client: TestClient, as_: dict[str, Headers], db: Session, workshop: Workshop
) -> None:
    bobs = manage.grant_certification(db, workshop.bob, "fdm-printer", now=NOW)
    db.commit()
    path = f"/api/v1/training/certifications/{bobs.id}/events"
    assert client.get(path, headers=as_["bob"]).status_code == 200
    assert client.get(path, headers=as_["manager"]).status_code == 200
    assert client.get(path, headers=as_["alice"]).status_code == 403
    assert client.get(path, headers=as_["trainer"]).status_code == 403  # she does not train 3D printing
    assert client.get("/api/v1/training/certifications/999/events", headers=as_["manager"]).status_code == 404


def test_my_trainees(client: TestClient, as_: dict[str, Headers], db: Session, workshop: Workshop) -> None:
    client.post(
        "/api/v1/training/certifications",
        json={"member_id": workshop.bob, "skill": "overlocker", "level": "supervised"},
        headers=as_["trainer"],
    )
    mine = client.get("/api/v1/training/trainees", headers=as_["trainer"]).json()
    # Bob's just now; then the seeded sewing ones she granted: Erin's (expired), Alice's, Carol's, Dave's.
    assert mine[0]["member_name"] == "Bob Durand"
    assert sorted((c["member_id"], c["skill"], c["status"]) for c in mine) == sorted(
        [
            (workshop.bob, "overlocker", "valid"),
            (workshop.alice, "industrial-sewing", "valid"),
            (workshop.carol, "industrial-sewing", "valid"),
            (workshop.dave, "industrial-sewing", "valid"),
            (workshop.erin, "industrial-sewing", "expired"),
        ]
    )
    sewing = client.get("/api/v1/training/trainees", params={"skill": "overlocker"}, headers=as_["trainer"])
    assert [c["member_id"] for c in sewing.json()] == [workshop.bob]
    assert client.get("/api/v1/training/trainees", headers=as_["alice"]).status_code == 403


def test_expiring_soon(client: TestClient, as_: dict[str, Headers], db: Session, workshop: Workshop) -> None:
    manage.grant_certification(
        db, workshop.bob, "fdm-printer", expires_at=LATER + timedelta(days=10), now=NOW
    )
    manage.grant_certification(
        db, workshop.bob, "industrial-sewing", expires_at=LATER + timedelta(days=20), now=NOW
    )
    manage.set_skill_training(db, "overlocker", disuse_months=1)
    db.commit()
    trainers = client.get("/api/v1/training/expiring", headers=as_["trainer"]).json()
    # Her skills only: Bob's sewing by date; the overlocker ones by disuse on 2026-04-02.
    assert [(e["member_id"], e["skill"], e["by_disuse"]) for e in trainers] == [
        (workshop.bob, "industrial-sewing", False),
        (workshop.trainer, "overlocker", True),
        (workshop.alice, "overlocker", True),
        (workshop.erin, "overlocker", True),
    ]
    assert trainers[1]["ends_at"].startswith("2026-04-02T10:00:00")
    assert trainers[1]["disuse_deadline"] == trainers[1]["ends_at"]
    managers = client.get("/api/v1/training/expiring", params={"days": 15}, headers=as_["manager"]).json()
    assert [(e["member_id"], e["skill"]) for e in managers] == [(workshop.bob, "fdm-printer")]
    refused = client.get("/api/v1/training/expiring", headers=as_["alice"])
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This needs one of the roles trainer, manager."
    assert (
        client.get("/api/v1/training/expiring", params={"days": 0}, headers=as_["manager"]).status_code == 422
    )
    assert (
        client.get("/api/v1/training/expiring", params={"days": 400}, headers=as_["manager"]).status_code
        == 422
    )


def test_a_certification_from_the_web_and_one_from_the_machine_read_the_same(
    client: TestClient, as_: dict[str, Headers], db: Session, workshop: Workshop
) -> None:
    from tests.server.training.test_machine import confirm  # noqa: PLC0415

    web = client.post(
        "/api/v1/training/certifications",
        json={"member_id": workshop.bob, "skill": "industrial-sewing"},
        headers=as_["trainer"],
    ).json()
    confirm(db, workshop, "overlocker-1", workshop.trainer_badge, workshop.bob_badge)
    machine = next(
        c
        for c in client.get("/api/v1/me/certifications", headers=as_["bob"]).json()
        if c["skill"] == "overlocker"
    )
    # Same member, trainer, level, standing and shape; only what was certified, when and how differ.
    different = {key for key in web if web[key] != machine[key]}
    assert different == {"id", "skill", "skill_name", "granted_at", "granted_via"}
    assert (web["granted_via"], machine["granted_via"]) == ("web", "machine")
    assert db.get(Certification, machine["id"]) is not None

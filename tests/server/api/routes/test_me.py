"""What a member sees of themself: roles, certifications with their deadlines, and refusals."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server import workshop as manage
from tests.server.api.conftest import bearer
from tests.server.conftest import NOW, Workshop
from tests.server.test_supervision import tap

LATER = NOW + timedelta(days=1)


def test_who_am_i(client: TestClient, app: FastAPI, db: Session, workshop: Workshop) -> None:
    app.state.clock = lambda: LATER
    tess = client.get("/api/v1/me", headers=bearer(db, workshop.trainer)).json()
    assert (tess["id"], tess["name"], tess["is_manager"], tess["is_treasurer"]) == (
        workshop.trainer,
        "Tess Trainer",
        False,
        False,
    )
    assert tess["trainer_for"] == ["industrial-sewing", "overlocker"]
    manage.set_member_roles(db, workshop.bob, manager=True, treasurer=True)
    db.commit()
    bob = client.get("/api/v1/me", headers=bearer(db, workshop.bob)).json()
    assert (bob["is_manager"], bob["is_treasurer"], bob["trainer_for"]) == (True, True, [])


def test_my_certifications_with_expiry_and_disuse(
    client: TestClient, app: FastAPI, db: Session, workshop: Workshop
) -> None:
    app.state.clock = lambda: LATER
    manage.set_skill_training(db, "industrial-sewing", disuse_months=6)
    db.commit()
    mine = client.get("/api/v1/me/certifications", headers=bearer(db, workshop.alice)).json()
    by_skill = {c["skill"]: c for c in mine}
    assert set(by_skill) == {"industrial-sewing", "overlocker"}
    sewing, overlocker = by_skill["industrial-sewing"], by_skill["overlocker"]
    assert (sewing["level"], sewing["granted_by"], sewing["granted_by_name"], sewing["status"]) == (
        "autonomous",
        workshop.trainer,
        "Tess Trainer",
        "valid",
    )
    assert sewing["expires_at"] is None
    assert sewing["disuse_deadline"].startswith("2026-09-02T10:00:00")
    assert sewing["ends_at"] == sewing["disuse_deadline"]
    assert (overlocker["level"], overlocker["disuse_deadline"]) == ("supervised", None)
    assert overlocker["expires_at"].startswith("2027-03-02T10:00:00")
    # Erin sees her expired one, and why: granted a year ago and never used, it lapsed by
    # disuse six months later, before its expiry date.
    erins = client.get("/api/v1/me/certifications", headers=bearer(db, workshop.erin)).json()
    expired = next(c for c in erins if c["skill"] == "industrial-sewing")
    assert (expired["status"], expired["expired_by_disuse"]) == ("expired", True)
    assert expired["ends_at"].startswith("2025-09-02T10:00:00")
    assert expired["expires_at"].startswith("2026-03-01T10:00:00")


def test_revoked_ones_on_request(client: TestClient, db: Session, workshop: Workshop) -> None:
    certification = manage.grant_certification(db, workshop.bob, "fdm-printer", now=NOW)
    manage.revoke_certification(db, certification.id, reason="left", now=NOW)
    db.commit()
    headers = bearer(db, workshop.bob)
    assert client.get("/api/v1/me/certifications", headers=headers).json() == []
    everything = client.get(
        "/api/v1/me/certifications", params={"include_revoked": True}, headers=headers
    ).json()
    assert [(c["status"], c["revoke_reason"]) for c in everything] == [("revoked", "left")]


def test_why_was_i_refused(client: TestClient, db: Session, workshop: Workshop) -> None:
    tap(db, workshop, "sewing-1", workshop.bob_badge, NOW)
    tap(db, workshop, "overlocker-1", workshop.alice_badge, NOW + timedelta(minutes=1))
    tap(db, workshop, "cutter-1", workshop.alice_badge, NOW + timedelta(minutes=2))
    tap(db, workshop, "sewing-1", workshop.alice_badge, NOW + timedelta(minutes=3))
    headers = bearer(db, workshop.alice)
    mine = client.get("/api/v1/me/decisions", headers=headers).json()
    assert [(d["machine_slug"], d["granted"], d["reason"]) for d in mine] == [
        ("sewing-1", True, "granted"),
        ("cutter-1", False, "machine_locked_out"),
        ("overlocker-1", False, "supervision_required"),
    ]
    refusals = client.get(
        "/api/v1/me/decisions", params={"granted": False, "limit": 1}, headers=headers
    ).json()
    assert [d["message"] for d in refusals] == ["Band knife is locked out: blade being replaced"]
    since = client.get(
        "/api/v1/me/decisions", params={"since": "2026-03-02T10:02:00Z"}, headers=headers
    ).json()
    assert len(since) == 2
    # Bob's refusal is his own.
    assert [
        d["reason"] for d in client.get("/api/v1/me/decisions", headers=bearer(db, workshop.bob)).json()
    ] == ["not_certified"]

"""GET /api/v1/audit: who did what, when, with the actor of every change made through the API."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server import workshop as manage
from tests.server.api.conftest import bearer
from tests.server.conftest import NOW, Workshop


def test_changes_through_the_api_name_their_actor(
    client: TestClient, app: FastAPI, db: Session, workshop: Workshop, staff: int
) -> None:
    manager = manage.add_member(db, "Manon Manager", now=NOW).id
    manage.set_member_roles(db, manager, manager=True)
    db.commit()
    moments = iter(NOW + timedelta(minutes=minute) for minute in range(1, 100))
    app.state.clock = lambda: next(moments)
    as_manager, as_trainer, as_staff = bearer(db, manager), bearer(db, workshop.trainer), bearer(db, staff)
    lockout = {"locked_out": True, "reason": "needle broken"}
    assert (
        client.patch("/api/v1/machines/sewing-1/lockout", json=lockout, headers=as_manager).status_code == 200
    )
    assert (
        client.patch("/api/v1/badges/B0B00001", json={"active": False}, headers=as_manager).status_code == 200
    )
    certified = client.post(
        "/api/v1/training/certifications", json={"member_id": workshop.bob, "skill": "industrial-sewing"},
        headers=as_trainer,
    )  # fmt: skip
    assert certified.status_code == 201
    listed = client.post("/api/v1/price-lists", json={"code": "standard", "name": "Tarif"}, headers=as_staff)
    assert listed.status_code == 201

    # The seed's entries are at NOW (or at the real time, for roles): the calls above are in this hour.
    hour = {
        "since": (NOW + timedelta(seconds=30)).isoformat(),
        "until": (NOW + timedelta(hours=1)).isoformat(),
    }
    trail = client.get("/api/v1/audit", params=hour, headers=as_manager)
    assert trail.status_code == 200
    assert [(e["action"], e["actor_id"]) for e in trail.json()] == [
        ("price_list.add", staff),
        ("certification.grant", workshop.trainer),
        ("badge.disable", manager),
        ("machine.lockout", manager),
    ]
    lockout_entry = trail.json()[-1]
    assert (lockout_entry["subject_type"], lockout_entry["subject_id"], lockout_entry["details"]) == (
        "machine", "sewing-1", {"reason": "needle broken"},
    )  # fmt: skip

    def actions(**params: str | int) -> list[str]:
        answer = client.get("/api/v1/audit", params=params, headers=as_manager)
        assert answer.status_code == 200, answer.text
        return [e["action"] for e in answer.json()]

    assert actions(actor=manager) == ["badge.disable", "machine.lockout"]
    assert actions(entity="machine", entity_id="sewing-1", **hour) == ["machine.lockout"]
    assert actions(entity="machine", entity_id="cutter-1", **hour) == []
    assert actions(action="certification.grant", **hour) == ["certification.grant"]
    assert actions(**hour, limit=2) == ["price_list.add", "certification.grant"]
    assert actions(**hour, limit=2, offset=2) == ["badge.disable", "machine.lockout"]
    granted_at = trail.json()[1]["at"]
    assert actions(since=hour["since"], until=granted_at) == ["badge.disable", "machine.lockout"]
    assert (
        client.get("/api/v1/audit", params={"since": "2026-03-02T10:00:00"}, headers=as_manager).status_code
        == 422
    )
    assert client.get("/api/v1/audit", headers=as_trainer).status_code == 403

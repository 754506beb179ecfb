"""/api/v1/price-lists, their versions, /plans and /plan-subscriptions, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.models import AuditEntry, MemberPlan, PriceVersionRow
from tests.server.conftest import Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)
SEWING = {
    "machine_class": "sewing", "valid_from": "2026-04-01", "running_cents": 600, "running_per": 60,
    "session_fee_cents": 50, "increment_minutes": 5, "grace_minutes": 3, "daily_cap_cents": 3000,
    "vat_rate_bp": 0,
}  # fmt: skip


@pytest.fixture(autouse=True)
def fixed_clock(app: FastAPI) -> None:
    app.state.clock = lambda: NOW


def count(db: Session, model: type[object]) -> int:
    db.rollback()
    return db.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def test_price_lists_and_versions(client: TestClient, workshop: Workshop, db: Session) -> None:
    audited = count(db, AuditEntry)  # the workshop's certifications
    made = client.post("/api/v1/price-lists", json={"code": "standard", "name": "Tarif public"})
    assert made.status_code == 201, made.text
    assert made.json() == {"code": "standard", "name": "Tarif public", "versions": 0}
    version = client.post("/api/v1/price-lists/standard/versions", json=SEWING)
    assert version.status_code == 201, version.text
    assert version.json() | SEWING == version.json()
    assert version.json()["code"] == "standard-sewing-20260401"
    assert (version.json()["rounding"], version.json()["machine"]) == ("up", None)
    printer = client.post(
        "/api/v1/price-lists/standard/versions",
        json={
            "machine": "printer-1",
            "valid_from": "2026-04-01",
            "running_cents": 3,
            "code": "printer-april",
        },
    )
    assert printer.status_code == 201, printer.text
    later = client.post("/api/v1/price-lists/standard/versions", json=SEWING | {"valid_from": "2026-07-01"})
    assert later.status_code == 201

    listed = client.get("/api/v1/price-lists/standard/versions").json()
    assert [v["code"] for v in listed] == [
        "standard-sewing-20260401",
        "standard-sewing-20260701",
        "printer-april",
    ]
    assert client.get("/api/v1/price-lists").json() == [
        {"code": "standard", "name": "Tarif public", "versions": 3}
    ]
    applicable = "/api/v1/price-lists/standard/applicable"
    on = client.get(applicable, params={"machine": "sewing-1", "on": "2026-06-30"})
    assert on.json()["code"] == "standard-sewing-20260401"  # sewing-1's class
    on = client.get(applicable, params={"machine_class": "sewing", "on": "2026-07-01"})
    assert on.json()["code"] == "standard-sewing-20260701"
    assert (
        client.get(applicable, params={"machine": "printer-1", "on": "2026-04-01"}).json()["code"]
        == "printer-april"
    )
    none = client.get(applicable, params={"machine": "overlocker-1", "on": "2026-04-01"})
    assert none.status_code == 404
    assert "no price for machine 'overlocker-1'" in none.json()["detail"]
    assert count(db, AuditEntry) == audited + 4  # the list and three versions

    before = count(db, PriceVersionRow)
    versions = "/api/v1/price-lists/standard/versions"
    refusals = [
        (versions, SEWING, 409, "both valid on 2026-04-01"),
        (
            versions,
            SEWING | {"valid_from": "2026-05-01", "valid_until": "2026-07-02"},
            409,
            "both valid on 2026-07-01",
        ),
        (
            versions,
            SEWING | {"valid_from": "2026-05-01", "running_cents": -600},
            422,
            "greater than or equal to 0",
        ),
        (
            versions,
            SEWING | {"valid_from": "2026-05-01", "session_fee_cents": -1},
            422,
            "greater than or equal",
        ),
        (
            versions,
            SEWING | {"valid_from": "2026-05-01", "running_per": 0},
            422,
            "greater than or equal to 1",
        ),
        (
            versions,
            SEWING | {"valid_from": "2026-05-01", "rounding": "sideways"},
            422,
            "'up', 'nearest' or 'down'",
        ),
        (
            versions,
            SEWING | {"valid_from": "2026-05-01", "machine_class": "sewnig"},
            404,
            "no machine of class 'sewnig'",
        ),
        (versions, SEWING | {"valid_from": "2026-05-01", "machine": "sewing-1"}, 422, "one of them"),
        (versions, SEWING | {"valid_from": "2026-05-01", "machine_class": None}, 422, "one of them"),
        (
            versions,
            SEWING | {"valid_from": "2026-05-01", "valid_until": "2026-05-01"},
            422,
            "must start before",
        ),
        (versions, SEWING | {"valid_from": "2026-05-01", "code": "printer-april"}, 409, "exists already"),
        (versions, SEWING | {"valid_from": "2026-05-01", "price": 6}, 422, "Extra inputs"),
        ("/api/v1/price-lists/nope/versions", SEWING, 404, "no price list 'nope'"),
        ("/api/v1/price-lists/No%20pe/versions", SEWING, 422, "should match pattern"),
        (
            versions,
            {"machine": "sewing-9", "valid_from": "2026-05-01", "running_cents": 1},
            404,
            "no machine 'sewing-9'",
        ),
        ("/api/v1/price-lists", {"code": "standard", "name": "Again"}, 409, "exists already"),
        ("/api/v1/price-lists", {"code": "Standard", "name": "Again"}, 422, "should match pattern"),
    ]
    for url, body, code, detail in refusals:
        answer = client.post(url, json=body)
        assert answer.status_code == code, (body, answer.text)
        assert detail in str(answer.json()["detail"]), (body, answer.text)
    assert count(db, PriceVersionRow) == before
    assert count(db, AuditEntry) == audited + 4
    assert client.get("/api/v1/price-lists/nope/versions").status_code == 404
    assert client.get(applicable, params={"machine": "sewing-1"}).status_code == 422  # which day?
    assert client.get(applicable, params={"on": "2026-04-01"}).status_code == 422  # which machine?


def test_plans_and_subscriptions(client: TestClient, workshop: Workshop, db: Session) -> None:
    plan = {"code": "maker", "name": "Maker", "monthly_fee_cents": 1500, "included_minutes": {"sewing": 120}}
    made = client.post("/api/v1/plans", json=plan)
    assert made.status_code == 201, made.text
    assert made.json() == plan | {"vat_rate_bp": 2000}
    assert client.get("/api/v1/plans").json() == [made.json()]
    subscribe = {
        "member_id": workshop.alice,
        "plan": "maker",
        "from_month": "2026-04",
        "until_month": "2026-06",
    }
    rows = client.post("/api/v1/plan-subscriptions", json=subscribe)
    assert rows.status_code == 201, rows.text
    assert rows.json() == [
        {"member_id": workshop.alice, "plan": "maker", "valid_from": "2026-04-01"},
        {"member_id": workshop.alice, "plan": None, "valid_from": "2026-07-01"},
    ]
    stop = {"member_id": workshop.bob, "plan": None, "from_month": "2026-05"}
    client.post("/api/v1/plan-subscriptions", json=stop | {"plan": "maker", "from_month": "2026-04"})
    assert client.post("/api/v1/plan-subscriptions", json=stop).status_code == 201
    mine = client.get("/api/v1/plan-subscriptions", params={"member": workshop.bob}).json()
    assert [(s["plan"], s["valid_from"]) for s in mine] == [("maker", "2026-04-01"), (None, "2026-05-01")]
    assert len(client.get("/api/v1/plan-subscriptions").json()) == 4

    before = (count(db, MemberPlan), count(db, AuditEntry))
    refusals = [
        ("/api/v1/plans", plan, 409, "exists already"),
        (
            "/api/v1/plans",
            plan | {"code": "cheap", "monthly_fee_cents": -1},
            422,
            "greater than or equal to 0",
        ),
        ("/api/v1/plans", plan | {"code": "x", "included_minutes": {"sweing": 60}}, 404, "class 'sweing'"),
        (
            "/api/v1/plans",
            plan | {"code": "x", "included_minutes": {"sewing": 0}},
            422,
            "greater than or equal to 1",
        ),
        ("/api/v1/plan-subscriptions", subscribe | {"plan": "gold"}, 404, "no plan 'gold'"),
        ("/api/v1/plan-subscriptions", subscribe | {"member_id": 999}, 404, "no member 999"),
        ("/api/v1/plan-subscriptions", subscribe, 409, "already has a plan change from 2026-04"),
        ("/api/v1/plan-subscriptions", subscribe | {"from_month": "2026-13"}, 422, "should match pattern"),
        (
            "/api/v1/plan-subscriptions",
            subscribe | {"member_id": workshop.erin, "until_month": "2026-03"},
            422,
            "before it starts",
        ),
        (
            "/api/v1/plan-subscriptions",
            stop | {"member_id": workshop.erin},
            409,
            "no plan in 2026-05 to stop",
        ),
    ]
    for url, body, code, detail in refusals:
        answer = client.post(url, json=body)
        assert answer.status_code == code, (body, answer.text)
        assert detail in str(answer.json()["detail"]), (body, answer.text)
    assert (count(db, MemberPlan), count(db, AuditEntry)) == before
    assert client.get("/api/v1/plan-subscriptions", params={"member": 999}).status_code == 404

"""/api/v1/consumables and /api/v1/consumable-sales, and a sale's way to the invoice, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.billing.monthly import close_month
from server.billing.periods import Period
from server.models import AuditEntry, ConsumableSaleRow
from tests.server.billing_db.conftest import add_session, at, settings
from tests.server.conftest import Workshop


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)
PLA = {
    "code": "pla",
    "name": "Filament PLA",
    "unit": "gram",
    "unit_cents": 5,
    "unit_per": 2,
    "vat_rate_bp": 0,
}


@pytest.fixture(autouse=True)
def fixed_clock(app: FastAPI) -> None:
    app.state.clock = lambda: NOW


def count(db: Session, model: type[object]) -> int:
    db.rollback()
    return db.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def refused(client: TestClient, url: str, body: dict[str, Any], code: int, detail: str) -> None:
    answer = client.post(url, json=body)
    assert answer.status_code == code, (body, answer.text)
    assert detail in str(answer.json()["detail"]), (body, answer.text)


def test_the_consumables_catalogue(client: TestClient, workshop: Workshop, db: Session) -> None:
    made = client.post("/api/v1/consumables", json=PLA)
    assert made.status_code == 201, made.text
    assert made.json() == PLA | {"unit": "g"}
    thread = {"code": "thread", "name": "Cône de fil", "unit": "piece", "unit_cents": 350}
    assert client.post("/api/v1/consumables", json=thread).status_code == 201
    repriced = client.patch("/api/v1/consumables/thread", json={"unit_cents": 380})
    assert repriced.status_code == 200, repriced.text
    assert (repriced.json()["unit_cents"], repriced.json()["unit_per"]) == (380, 1)
    assert [c["code"] for c in client.get("/api/v1/consumables").json()] == ["pla", "thread"]

    audited = count(db, AuditEntry)
    for body, code, detail in [
        (PLA, 409, "exists already"),
        (PLA | {"code": "oil", "unit": "litre"}, 422, "not 'litre'"),
        (PLA | {"code": "oil", "unit_cents": -5}, 422, "greater than or equal to 0"),
        (PLA | {"code": "oil", "unit_per": 0}, 422, "greater than or equal to 1"),
        (PLA | {"code": "oil", "vat_rate_bp": 20_001}, 422, "less than or equal to 10000"),
        (PLA | {"code": "Oil can"}, 422, "should match pattern"),
    ]:
        refused(client, "/api/v1/consumables", body, code, detail)
    for code_path, patch, code, detail in [
        ("oil", {"name": "Oil"}, 404, "no consumable 'oil'"),
        ("pla", {"unit_per": 10}, 422, "goes with its unit_cents"),
        ("pla", {"name": "Filament PLA"}, 422, "nothing to change"),
        ("pla", {"unit_cents": -1}, 422, "greater than or equal to 0"),
    ]:
        answer = client.patch(f"/api/v1/consumables/{code_path}", json=patch)
        assert answer.status_code == code, (patch, answer.text)
        assert detail in str(answer.json()["detail"])
    assert count(db, AuditEntry) == audited


def test_sales_and_their_refusals(client: TestClient, workshop: Workshop, db: Session) -> None:
    client.post("/api/v1/consumables", json=PLA)
    sale = {"consumable": "pla", "quantity": 40, "member_id": workshop.alice, "machine": "printer-1",
            "sold_at": "2026-04-10T15:30:00+02:00", "sale_id": "gw-1"}  # fmt: skip
    made = client.post("/api/v1/consumable-sales", json=sale)
    assert made.status_code == 201, made.text
    assert made.json() | {"sold_at": None} == {
        "sale_id": "gw-1", "sold_at": None, "member_id": workshop.alice, "member_name": "Alice Martin",
        "machine": "printer-1", "consumable": "pla", "consumable_name": "Filament PLA", "unit": "g",
        "quantity": 40, "amount_cents": 100, "billed_in": "2026-04", "adjustment_for": None, "invoice": None,
    }  # fmt: skip
    by_badge = client.post(
        "/api/v1/consumable-sales",
        json={"consumable": "pla", "quantity": 7, "badge": workshop.alice_badge.lower()},
    )
    assert by_badge.status_code == 201, by_badge.text
    assert (by_badge.json()["member_id"], by_badge.json()["machine"]) == (workshop.alice, None)
    assert datetime.fromisoformat(by_badge.json()["sold_at"]) == NOW  # now, by the server's clock

    sales = count(db, ConsumableSaleRow)
    url = "/api/v1/consumable-sales"
    without_sale_id = {k: v for k, v in sale.items() if k != "sale_id"}
    for body, code, detail in [
        (sale, 409, "recorded already"),
        (without_sale_id | {"quantity": 0}, 422, "greater than 0"),
        (without_sale_id | {"quantity": -5}, 422, "greater than 0"),
        (without_sale_id | {"quantity": 2.5}, 422, "valid integer"),
        (without_sale_id | {"member_id": 999}, 404, "no member 999"),
        (without_sale_id | {"member_id": None, "badge": "0000FFFF"}, 404, "no badge 0000FFFF"),
        (without_sale_id | {"member_id": None, "badge": workshop.dave_badge}, 422, "disabled"),
        (without_sale_id | {"badge": workshop.bob_badge}, 422, "one of them"),
        (without_sale_id | {"member_id": None}, 422, "one of them"),
        (without_sale_id | {"consumable": "abs"}, 404, "no consumable 'abs'"),
        (without_sale_id | {"machine": "printer-9"}, 404, "no machine 'printer-9'"),
        (without_sale_id | {"sold_at": "2026-04-20T12:01:00+00:00"}, 422, "in the future"),
        (without_sale_id | {"sold_at": "2026-04-10T15:30:00"}, 422, "timezone info"),
    ]:
        refused(client, url, body, code, detail)
    assert count(db, ConsumableSaleRow) == sales

    listed = client.get(url, params={"member": workshop.alice, "period": "2026-04"}).json()
    assert [s["quantity"] for s in listed] == [40, 7]  # in order of time
    assert client.get(url, params={"period": "2026-03"}).json() == []
    assert client.get(url, params={"member": 999}).status_code == 404
    assert client.get(url, params={"period": "2026-13"}).status_code == 422


def test_a_sale_recorded_through_the_api_is_a_line_of_the_invoice(
    client: TestClient, workshop: Workshop, db: Session
) -> None:
    """The treasurer's month, through the API: prices, a consumable, a sale at the machine, the close."""
    db.add(settings())
    db.commit()
    client.post("/api/v1/price-lists", json={"code": "standard", "name": "Tarif public"})
    price = {"machine": "printer-1", "valid_from": "2026-01-01", "running_cents": 120, "running_per": 60}
    assert client.post("/api/v1/price-lists/standard/versions", json=price).status_code == 201
    assert client.post("/api/v1/consumables", json=PLA).status_code == 201
    add_session(db, workshop.alice, "printer-1", at(date(2026, 3, 4)), 90)
    db.commit()
    for grams in (40, 25):  # two spools' worth the same day, at the same printer: one line
        sold = client.post(
            "/api/v1/consumable-sales",
            json={"consumable": "pla", "quantity": grams, "badge": workshop.alice_badge, "machine": "printer-1",
                  "sold_at": "2026-03-04T12:00:00+01:00"},
        )  # fmt: skip
        assert sold.status_code == 201, sold.text
        assert sold.json()["billed_in"] == "2026-03"

    close_month(db, Period(2026, 3), date(2026, 4, 2))
    db.commit()
    (invoice,) = client.get("/api/v1/invoices", params={"period": "2026-03"}).json()
    assert invoice["payer_id"] == workshop.alice
    lines = client.get(f"/api/v1/invoices/{invoice['number']}").json()["lines"]
    consumable = [line for line in lines if line["kind"] == "consumable"]
    assert [
        (line["item"], line["quantity"], line["unit"], line["unit_price_cents"], line["unit_price_per"],
         line["amount_cents"], line["machine"], line["day"], line["adjustment_for"])
        for line in consumable
    ] == [("Filament PLA", 65, "g", 5, 2, 163, "printer-1", "2026-03-04", None)]  # fmt: skip
    assert invoice["total_cents"] == 180 + 163  # 90 min at 1.20 €/h, and 65 g at 0.025 €/g, rounded once
    sales = client.get("/api/v1/consumable-sales", params={"period": "2026-03"}).json()
    assert {s["invoice"] for s in sales} == {invoice["number"]}

    # March is closed: a sale of March recorded now is billed with April, as an adjustment.
    late = client.post(
        "/api/v1/consumable-sales",
        json={"consumable": "pla", "quantity": 10, "member_id": workshop.alice, "machine": "printer-1",
              "sold_at": "2026-03-30T10:00:00+02:00"},
    )  # fmt: skip
    assert late.status_code == 201, late.text
    assert (late.json()["billed_in"], late.json()["adjustment_for"]) == ("2026-04", "2026-03")
    closed_price = client.post(
        "/api/v1/price-lists/standard/versions", json=price | {"valid_from": "2026-03-15"}
    )
    assert closed_price.status_code == 409
    assert "2026-03, which is closed" in closed_price.json()["detail"]
    close_month(db, Period(2026, 4), date(2026, 5, 2))
    db.commit()
    (april,) = client.get("/api/v1/invoices", params={"period": "2026-04"}).json()
    (line,) = client.get(f"/api/v1/invoices/{april['number']}").json()["lines"]
    assert (line["kind"], line["quantity"], line["amount_cents"], line["adjustment_for"]) == (
        "consumable", 10, 25, "2026-03",
    )  # fmt: skip

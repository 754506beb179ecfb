"""GET /api/v1/invoices, /invoices/{number}, /invoices/{number}.pdf and /balances, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from demo.history import seed_history
from demo.workshop import seed
from server.billing.monthly import close_month
from server.billing.periods import Period
from server.db import make_engine, make_session_factory
from server.settings import Settings


@pytest.fixture(autouse=True)
def signed_in(staff_client: TestClient) -> TestClient:
    """Every request here acts as a manager and treasurer (``staff_client``); test_authorization checks who else may."""
    return staff_client


def _closed_books(database_url: str) -> None:
    seed(database_url, now=datetime(2026, 1, 5, 9, tzinfo=UTC))
    seed_history(database_url, 2, today=date(2026, 4, 10))  # February and March; February closed
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            close_month(db, Period(2026, 3), date(2026, 4, 2))
            db.commit()
    finally:
        engine.dispose()


def test_invoices_and_balances(client: TestClient, settings: Settings) -> None:
    _closed_books(settings.database_url)
    every = client.get("/api/v1/invoices", params={"limit": 500})
    assert every.status_code == 200
    invoices = every.json()
    assert {i["period"] for i in invoices} == {"2026-02", "2026-03"}
    assert [i["number"] for i in invoices] == sorted(i["number"] for i in invoices)
    february = client.get("/api/v1/invoices", params={"period": "2026-02"}).json()
    assert [i["due_cents"] > 0 for i in february].count(True) == 1  # its rejected direct debit
    march = client.get("/api/v1/invoices", params={"period": "2026-03"}).json()
    assert march
    assert all(i["period"] == "2026-03" for i in march)
    assert all(i["due_cents"] == i["total_cents"] for i in march)  # nothing paid yet
    organisation = client.get("/api/v1/invoices", params={"payer_kind": "organisation"}).json()
    assert organisation
    assert {i["payer_kind"] for i in organisation} == {"organisation"}
    one = march[0]
    mine = client.get(
        "/api/v1/invoices", params={"payer_kind": one["payer_kind"], "payer_id": one["payer_id"]}
    ).json()
    assert one["number"] in {i["number"] for i in mine}
    assert client.get("/api/v1/invoices", params={"payer_id": 1}).status_code == 422
    assert client.get("/api/v1/invoices", params={"period": "2026-13"}).status_code == 422

    detail = client.get(f"/api/v1/invoices/{one['number']}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["number"] == one["number"]
    assert body["lines"]
    assert sum(line["amount_cents"] for line in body["lines"]) == body["total_excl_vat_cents"]
    assert body["seller_vat_exempt"] is True
    pdf = client.get(f"/api/v1/invoices/{one['number']}.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert client.get("/api/v1/invoices/2026-999999").status_code == 404
    assert client.get("/api/v1/invoices/2026-999999.pdf").status_code == 404
    assert client.get("/api/v1/invoices/nonsense").status_code == 422

    balances = client.get("/api/v1/balances").json()
    owed = {(b["payer_kind"], b["payer_id"]): b["balance_cents"] for b in balances}
    for kind, payer in {(i["payer_kind"], i["payer_id"]) for i in invoices}:
        # February is collected (one debit rejected: due again); March is not paid yet.
        due = sum(i["due_cents"] for i in invoices if (i["payer_kind"], i["payer_id"]) == (kind, payer))
        assert owed[(kind, payer)] == due
    assert all(b["account"][0] in "MO" for b in balances)

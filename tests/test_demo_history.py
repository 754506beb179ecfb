"""``atelier demo --history N``: the seeded history can be closed and collected at once, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from demo.history import describe, history_months, last_full_month, seed_history, treasurer_commands
from demo.workshop import seed
from server.billing.books import export_sepa, outstanding, record_sepa_collected, verify
from server.billing.consumables import sales
from server.billing.monthly import close_month
from server.billing.periods import Period
from server.billing.sepa import validate_pain008
from server.db import make_engine, make_session_factory
from server.models import (
    BillingPeriod,
    ConsumableSaleRow,
    InvoiceLineRow,
    InvoiceRow,
    PaymentRow,
    SaleCharge,
    SepaFile,
    UsageCharge,
    UsageSession,
)

TODAY = date(2026, 5, 14)


def test_history_closes_and_exports(database_url: str) -> None:
    seed(database_url, now=datetime(2026, 5, 14, 9, tzinfo=UTC))
    history = seed_history(database_url, 3, today=TODAY)
    assert history.created
    assert [str(p) for p in history.months] == ["2026-02", "2026-03", "2026-04"]
    assert [str(p) for p in history.closed] == ["2026-02", "2026-03"]
    assert history.sessions > 50
    assert history.sales > 10
    assert history.sepa_files == ("ATELIER-2026-02-001", "ATELIER-2026-03-002")
    again = seed_history(database_url, 3, today=TODAY)
    assert not again.created  # a second run adds nothing

    period = last_full_month(TODAY)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            assert db.scalar(sa.select(sa.func.count()).select_from(UsageSession)) == history.sessions
            _closed_months_are_paid(db, history.rejected)
            result = close_month(db, period, date(2026, 5, 2))
            db.commit()
            assert result.late_sessions == 0  # the earlier months were closed with their own sessions
            invoices = db.scalars(sa.select(InvoiceRow).where(InvoiceRow.period == "2026-04")).all()
            assert len(invoices) >= 5
            assert any(i.payer_kind == "organisation" for i in invoices)
            assert all(i.vat_cents == 0 and i.seller_vat_exempt for i in invoices)
            billed = db.scalar(sa.select(sa.func.count()).select_from(UsageCharge))
            assert billed == history.sessions  # every session billed once, over the three closes
            sold = db.scalar(sa.select(sa.func.count()).select_from(SaleCharge))
            assert (
                sold == history.sales == db.scalar(sa.select(sa.func.count()).select_from(ConsumableSaleRow))
            )
            items = set(
                db.scalars(
                    sa.select(InvoiceLineRow.item)
                    .join(InvoiceRow, InvoiceRow.id == InvoiceLineRow.invoice_id)
                    .where(InvoiceRow.period == "2026-04", InvoiceLineRow.kind == "consumable")
                )
            )
            assert "Filament PLA" in items  # filament sold at the 3D printer, on April's invoices
            assert db.scalar(sa.select(sa.func.count()).select_from(BillingPeriod)) == 3
            message_id, document, count = export_sepa(
                db, period, date(2026, 5, 10), datetime(2026, 5, 2, 9, tzinfo=UTC)
            )
            db.commit()
            validate_pain008(document)
            assert message_id == "ATELIER-2026-04-003"  # after the two files of the closed months
            assert message_id in treasurer_commands("x", history, TODAY)[2]
            assert count >= 4
            record_sepa_collected(db, message_id, date(2026, 5, 12))
            db.commit()
            assert verify(db) == db.scalar(sa.select(sa.func.count()).select_from(InvoiceRow))
    finally:
        engine.dispose()


def _closed_months_are_paid(db: Session, rejected: str | None) -> None:
    """Every invoice of the closed months is paid (debit or transfer) but the one whose debit was rejected."""
    assert rejected is not None
    assert {o.number for o in outstanding(db)} == {rejected}
    files = db.scalars(sa.select(SepaFile.period).order_by(SepaFile.id)).all()
    assert files == ["2026-02", "2026-03"]
    kinds = set(db.scalars(sa.select(PaymentRow.kind)))
    assert kinds == {"sepa", "transfer", "rejected"}
    assert all(p.on < TODAY for p in db.scalars(sa.select(PaymentRow)))  # the books are in the past
    lines = db.scalars(
        sa.select(InvoiceLineRow.kind)
        .join(InvoiceRow, InvoiceRow.id == InvoiceLineRow.invoice_id)
        .where(InvoiceRow.period.in_(["2026-02", "2026-03"]))
    ).all()
    assert "consumable" in lines
    march = sales(db, period=Period(2026, 3))
    assert march
    assert all(s.invoice is not None and s.billed_in == Period(2026, 3) for s in march)


def test_history_is_deterministic(tmp_path: Path) -> None:
    assert history_months(2, date(2026, 1, 3)) == history_months(2, date(2026, 1, 30))
    assert [str(p) for p in history_months(2, date(2026, 1, 3))] == ["2025-11", "2025-12"]
    counts = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path}/{name}.db"
        seed(url)
        history = seed_history(url, 2, today=TODAY)
        counts.append((history.sessions, history.sales, history.sepa_files, history.rejected))
    assert counts[0] == counts[1]
    lines = treasurer_commands("sqlite:////tmp/x.db", history, TODAY)
    assert lines[0] == "ATELIER_DATABASE_URL=sqlite:////tmp/x.db atelier billing close --period 2026-04"
    assert (
        lines[2]
        == "ATELIER_DATABASE_URL=sqlite:////tmp/x.db atelier billing pay --sepa-file ATELIER-2026-04-002"
    )
    assert "ATELIER-2026-03-001" in describe(history)[1]
    lines = treasurer_commands("sqlite:////tmp/x.db", seed_history(url, 2, today=TODAY), TODAY)
    assert not any("--sepa-file" in line for line in lines)  # nothing added: no file to name

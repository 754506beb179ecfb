"""``atelier demo --history N``: the seeded history can be closed and collected at once, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

from demo.history import history_months, last_full_month, seed_history, treasurer_commands
from demo.workshop import seed
from server.billing.books import export_sepa, verify
from server.billing.monthly import close_month
from server.billing.sepa import validate_pain008
from server.db import make_engine, make_session_factory
from server.models import BillingPeriod, InvoiceRow, UsageCharge, UsageSession

TODAY = date(2026, 5, 14)


def test_history_closes_and_exports(database_url: str) -> None:
    seed(database_url, now=datetime(2026, 5, 14, 9, tzinfo=UTC))
    history = seed_history(database_url, 3, today=TODAY)
    assert history.created
    assert [str(p) for p in history.months] == ["2026-02", "2026-03", "2026-04"]
    assert [str(p) for p in history.closed] == ["2026-02", "2026-03"]
    assert history.sessions > 50
    again = seed_history(database_url, 3, today=TODAY)
    assert not again.created  # a second run adds nothing

    period = last_full_month(TODAY)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            assert db.scalar(sa.select(sa.func.count()).select_from(UsageSession)) == history.sessions
            result = close_month(db, period, date(2026, 5, 2))
            db.commit()
            assert result.late_sessions == 0  # the earlier months were closed with their own sessions
            invoices = db.scalars(sa.select(InvoiceRow).where(InvoiceRow.period == "2026-04")).all()
            assert len(invoices) >= 5
            assert any(i.payer_kind == "organisation" for i in invoices)
            assert all(i.vat_cents == 0 and i.seller_vat_exempt for i in invoices)
            billed = db.scalar(sa.select(sa.func.count()).select_from(UsageCharge))
            assert billed == history.sessions  # every session billed once, over the three closes
            assert db.scalar(sa.select(sa.func.count()).select_from(BillingPeriod)) == 3
            message_id, document, count = export_sepa(
                db, period, date(2026, 5, 10), datetime(2026, 5, 2, 9, tzinfo=UTC)
            )
            db.commit()
            validate_pain008(document)
            assert message_id == "ATELIER-2026-04-001"
            assert count >= 4
            assert verify(db) == db.scalar(sa.select(sa.func.count()).select_from(InvoiceRow))
    finally:
        engine.dispose()


def test_history_is_deterministic(tmp_path: Path) -> None:
    assert history_months(2, date(2026, 1, 3)) == history_months(2, date(2026, 1, 30))
    assert [str(p) for p in history_months(2, date(2026, 1, 3))] == ["2025-11", "2025-12"]
    counts = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path}/{name}.db"
        seed(url)
        counts.append(seed_history(url, 2, today=TODAY).sessions)
    assert counts[0] == counts[1]
    lines = treasurer_commands("sqlite:////tmp/x.db", seed_history(url, 2, today=TODAY), TODAY)
    assert lines[0] == "ATELIER_DATABASE_URL=sqlite:////tmp/x.db atelier billing close --period 2026-04"

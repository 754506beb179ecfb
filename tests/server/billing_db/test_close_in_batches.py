"""The month close made in a second process, batch by batch: the same invoices, and a refusal
that still changes nothing (on SQLite and PostgreSQL)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing import closing
from server.billing.books import verify
from server.billing.errors import BillingError, NoPrice
from server.billing.monthly import close_month
from server.billing.periods import Period
from server.billing.store import load_invoices
from server.models import BillingPeriod, InvoiceLineRow, InvoiceRow, JournalEntryRow, PostingRow, UsageCharge
from tests.server.billing_db.conftest import Books, add_session, at

MARCH = Period(2026, 3)


def counts(db: Session) -> tuple[int, ...]:
    return tuple(
        db.scalar(sa.select(sa.func.count()).select_from(model)) or 0
        for model in (InvoiceRow, InvoiceLineRow, UsageCharge, JournalEntryRow, PostingRow, BillingPeriod)
    )


def a_month_of_use(db: Session, books: Books) -> None:
    w = books.workshop
    for day in range(2, 28, 3):
        add_session(db, w.alice, "sewing-1", at(date(2026, 3, day)), 20 + day)
        add_session(db, w.alice, "printer-1", at(date(2026, 3, day), 14), 90)
        add_session(db, w.bob, "sewing-1", at(date(2026, 3, day), 11), 35)
        add_session(db, books.employee, "sewing-1", at(date(2026, 3, day), 16), 300)  # the coop pays
    db.commit()


@pytest.mark.parametrize("batch_lines", [1, closing.BATCH_LINES])
def test_a_close_made_in_a_second_process_is_the_one_written(
    db: Session, books: Books, monkeypatch: pytest.MonkeyPatch, batch_lines: int
) -> None:
    monkeypatch.setattr(closing, "BATCH_LINES", batch_lines)  # 1: a batch per payer
    a_month_of_use(db, books)
    result = close_month(db, MARCH, date(2026, 4, 1), parallel=True)
    db.commit()
    assert result.sessions == 36
    assert [invoice for _, invoice in load_invoices(db)] == list(result.closed.invoices)
    assert [(i.payer.kind, i.total_cents) for i in result.closed.invoices] == [
        ("member", sum((20 + day) * 10 + 50 + 180 for day in range(2, 28, 3))),  # Alice: 6 €/h, fee, printer
        ("member", 9 * (350 + 50) + 2000 - 60 * 10),  # Bob: 60 minutes in his plan, and its fee
        ("organisation", 9 * 1500),  # 5 h at the member price
    ]
    assert verify(db) == 3
    charges, entries, periods = counts(db)[2], counts(db)[3], counts(db)[5]
    assert (charges, entries, periods) == (36, 3, 1)


def test_a_refusal_in_the_second_process_changes_nothing(
    db: Session, books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(closing, "BATCH_LINES", 1)  # Alice's invoice is written before Bob's is refused
    a_month_of_use(db, books)
    add_session(db, books.workshop.bob, "overlocker-1", at(date(2026, 3, 20)), 30)  # no price for it
    db.commit()
    before = counts(db)
    with pytest.raises(NoPrice, match="overlocker-1"):
        close_month(db, MARCH, date(2026, 4, 1), parallel=True)
    assert counts(db) == before
    db.commit()  # a caller that commits anyway commits nothing of the close
    assert counts(db) == before


def test_a_close_in_a_second_process_is_committed_by_the_caller_only(db: Session, books: Books) -> None:
    a_month_of_use(db, books)
    before = counts(db)
    close_month(db, MARCH, date(2026, 4, 1), parallel=True)
    assert counts(db) != before
    db.rollback()  # the caller changes its mind: nothing was committed behind its back
    assert counts(db) == before


def test_a_second_process_that_dies_is_a_refusal(
    db: Session, books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies(close: closing.CloseInput) -> Iterator[closing.Batch]:
        yield from ()
        os._exit(3)  # killed, say, by the kernel for want of memory

    a_month_of_use(db, books)
    before = counts(db)
    monkeypatch.setattr(closing, "produce", dies)
    with pytest.raises(BillingError, match=r"second process stopped \(exit code 3\)"):
        close_month(db, MARCH, date(2026, 4, 1), parallel=True)
    assert counts(db) == before


def test_the_close_leaves_the_connection_as_it_found_it(db: Session, books: Books) -> None:
    def tuning() -> tuple[object, ...]:
        if db.get_bind().dialect.name != "sqlite":
            return ()
        return tuple(
            db.connection().exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("cache_size", "mmap_size")
        )

    a_month_of_use(db, books)
    before = tuning()
    close_month(db, MARCH, date(2026, 4, 1), parallel=True)
    assert tuning() == before
    assert gc.isenabled()

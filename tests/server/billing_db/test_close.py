"""The month close on the database: invoices, chain, adjustments, credit notes, refusals."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing.books import issue_credit_note, outstanding, verify
from server.billing.errors import ChainBroken, InvalidPeriod, PeriodClosed
from server.billing.invoices import parse_number
from server.billing.monthly import close_month
from server.billing.periods import Period
from server.billing.store import auxiliary_of, balance_of, load_invoices
from server.models import InvoiceLineRow, InvoiceRow, JournalEntryRow, PostingRow, UsageCharge
from tests.server.billing_db.conftest import Books, add_session, at

MARCH, APRIL = Period(2026, 3), Period(2026, 4)


def counts(db: Session) -> tuple[int, ...]:
    return tuple(
        db.scalar(sa.select(sa.func.count()).select_from(model)) or 0
        for model in (InvoiceRow, InvoiceLineRow, UsageCharge, JournalEntryRow, PostingRow)
    )


def march_usage(db: Session, books: Books) -> None:
    w = books.workshop
    add_session(db, w.alice, "sewing-1", at(date(2026, 3, 3)), 45)  # 45 min at 6 €/h + 0.50 fee
    add_session(db, w.alice, "printer-1", at(date(2026, 3, 4)), 90)
    add_session(db, w.bob, "sewing-1", at(date(2026, 3, 5)), 90)  # 60 in his plan, 30 charged
    add_session(db, books.employee, "sewing-1", at(date(2026, 3, 6)), 60)  # the coop pays, member list
    db.commit()


def test_close_makes_gapless_chained_invoices(db: Session, books: Books) -> None:
    march_usage(db, books)
    result = close_month(db, MARCH, date(2026, 4, 1))
    db.commit()
    invoices = [invoice for _, invoice in load_invoices(db)]
    assert [parse_number(i.number) for i in invoices] == [(2026, 1), (2026, 2), (2026, 3)]
    assert [i.payer.kind for i in invoices] == ["member", "member", "organisation"]
    for earlier, later in itertools.pairwise(invoices):
        assert later.previous_hash == earlier.hash
    alice, bob, coop = invoices
    assert alice.total_cents == 450 + 50 + 180  # sewing 45 min, its fee, printer 90 min at 1.20 €/h
    assert bob.total_cents == 300 + 50 + 2000  # 30 min charged, fee, plan fee
    assert coop.total_cents == 300  # 60 min at the member price, no fee on that list
    assert result.sessions == 4
    assert verify(db) == 3
    assert balance_of(db, auxiliary_of("member", books.workshop.alice)) == alice.total_cents


def test_verify_detects_a_tampered_row(db: Session, books: Books) -> None:
    march_usage(db, books)
    close_month(db, MARCH, date(2026, 4, 1))
    db.commit()
    # Someone edits the database behind the application's back.
    db.execute(sa.text("UPDATE invoice_lines SET amount_cents = amount_cents - 100 WHERE position = 1"))
    db.commit()
    with pytest.raises(ChainBroken, match="2026-000001"):
        verify(db)


def test_closing_twice_is_refused_and_changes_nothing(db: Session, books: Books) -> None:
    march_usage(db, books)
    close_month(db, MARCH, date(2026, 4, 1))
    db.commit()
    before = counts(db)
    add_session(db, books.workshop.alice, "sewing-1", at(date(2026, 3, 20)), 30)
    db.commit()
    with pytest.raises(PeriodClosed, match="closed already"):
        close_month(db, MARCH, date(2026, 4, 2))
    db.rollback()
    assert counts(db) == before
    with pytest.raises(InvalidPeriod, match="not over"):
        close_month(db, APRIL, date(2026, 4, 15))
    db.rollback()
    assert counts(db) == before


def test_a_late_session_becomes_an_adjustment_in_the_next_period(db: Session, books: Books) -> None:
    march_usage(db, books)
    close_month(db, MARCH, date(2026, 4, 1))
    db.commit()
    march_alice = db.scalars(sa.select(InvoiceRow).where(InvoiceRow.number == "2026-000001")).one()
    march_total = march_alice.total_cents
    # A gateway that was offline replays a March session in April.
    add_session(db, books.workshop.alice, "sewing-1", at(date(2026, 3, 3), 15), 30)
    add_session(db, books.workshop.alice, "sewing-1", at(date(2026, 4, 2)), 10)
    db.commit()
    result = close_month(db, APRIL, date(2026, 5, 1))
    db.commit()
    assert result.late_sessions == 1
    april = next(i for i in result.closed.invoices if i.payer.id == books.workshop.alice)
    adjustments = [line for line in april.lines if line.adjustment_for == MARCH]
    assert {line.kind for line in adjustments} == {"running", "session_fee"}
    assert sum(line.amount_cents for line in adjustments) == 300 + 50
    # March's invoice never changed, and the chain still holds.
    db.refresh(march_alice)
    assert march_alice.total_cents == march_total
    assert verify(db) == 5  # Alice and Bob (his plan fee) in April


def test_daily_cap_counts_what_was_invoiced_before(db: Session, books: Books) -> None:
    w = books.workshop
    add_session(db, w.alice, "sewing-1", at(date(2026, 3, 3)), 240)  # 24 € + 0.50
    db.commit()
    close_month(db, MARCH, date(2026, 4, 1))
    db.commit()
    add_session(db, w.alice, "sewing-1", at(date(2026, 3, 3), 16), 120)  # 12.50 more, capped at 30 €
    db.commit()
    result = close_month(db, APRIL, date(2026, 5, 1))
    db.commit()
    april = next(i for i in result.closed.invoices if i.payer.id == w.alice)
    assert april.total_cents == 3000 - 2450


def test_credit_note_reverses_an_invoice(db: Session, books: Books) -> None:
    march_usage(db, books)
    close_month(db, MARCH, date(2026, 4, 1))
    db.commit()
    note = issue_credit_note(db, "2026-000001", date(2026, 4, 3))
    db.commit()
    assert note.number == "2026-000004"
    assert note.credited_invoice == "2026-000001"
    assert note.total_cents == -680
    assert "2026-000001" not in {o.number for o in outstanding(db)}
    assert balance_of(db, auxiliary_of("member", books.workshop.alice)) == 0
    assert verify(db) == 4
    with pytest.raises(Exception, match="reversed already"):
        issue_credit_note(db, "2026-000001", date(2026, 4, 3))

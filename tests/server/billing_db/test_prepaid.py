"""Prepaid members at the machine: refused below the minimum balance, unlocked for what it pays."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from protocol.messages import Reason
from server.billing.books import PaymentKind, record_payment
from server.billing.invoices import PayerKind
from server.models import Member
from tests.server.billing_db.conftest import Books, settings
from tests.server.test_access import tap


def test_prepaid_member_is_refused_then_unlocked_for_what_the_balance_pays(db: Session, books: Books) -> None:
    w = books.workshop
    minimum = settings()
    minimum.minimum_balance_cents = 500
    db.add(minimum)
    alice = db.get(Member, w.alice)
    assert alice is not None
    alice.prepaid = True
    db.commit()
    refused = tap(db, w, "sewing-1", w.alice_badge)
    assert not refused.granted
    assert refused.reason is Reason.INSUFFICIENT_BALANCE
    assert "balance" in refused.message
    # A 10 € top-up: 6 €/h + 0.50 fee per session, cap 30 €/day -> 95 minutes.
    record_payment(
        db, kind=PaymentKind.CASH, amount_cents=1000, on=date(2026, 3, 1), reference="CASH-1",
        payer=(PayerKind.MEMBER, w.alice),
    )  # fmt: skip
    db.commit()
    granted = tap(db, w, "sewing-1", w.alice_badge)
    assert granted.granted
    assert granted.max_minutes == 95
    # A member who is not prepaid has no limit.
    other = tap(db, w, "sewing-1", w.trainer_badge)
    assert other.granted
    assert other.max_minutes is None

"""The treasurer's changes to the books are in the audit trail, with who made them."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing.books import (
    PaymentKind,
    close_month,
    export_sepa,
    issue_credit_note,
    record_payment,
    record_sepa_collected,
)
from server.billing.periods import Period
from server.models import AuditEntry, InvoiceRow
from tests.server.billing_db.conftest import IBAN, Books, add_session, at

WHEN = datetime(2026, 4, 2, 9, tzinfo=UTC)


def trail(db: Session) -> list[tuple[str, int | None, str | None]]:
    return [
        (e.action, e.actor_id, e.subject_id)
        for e in db.scalars(
            sa.select(AuditEntry)
            .where(
                AuditEntry.action.in_(
                    ["billing_period.close", "invoice.credit_note", "payment.record", "sepa.export"]
                )
            )
            .order_by(AuditEntry.id)
        )
    ]


def test_close_credit_note_payments_and_collections_are_audited(db: Session, books: Books) -> None:
    w = books.workshop
    treasurer = w.trainer  # whoever: the trail records the id it is given
    add_session(db, w.alice, "sewing-1", at(date(2026, 3, 3)), 45)
    add_session(db, w.bob, "sewing-1", at(date(2026, 3, 5)), 90)
    db.commit()
    close_month(db, Period(2026, 3), date(2026, 4, 1), by=treasurer, now=WHEN)
    numbers = db.scalars(sa.select(InvoiceRow.number).order_by(InvoiceRow.id)).all()
    alices, bobs = numbers
    note = issue_credit_note(db, bobs, date(2026, 4, 2), by=treasurer, now=WHEN)
    paid = record_payment(
        db, kind=PaymentKind.CASH, amount_cents=100, on=date(2026, 4, 3), reference="caisse", invoice=alices,
        by=treasurer, now=WHEN,
    )  # fmt: skip
    message_id, _, _ = export_sepa(db, Period(2026, 3), date(2026, 4, 10), WHEN, by=treasurer)
    collected = record_sepa_collected(db, message_id, date(2026, 4, 10), by=treasurer, now=WHEN)
    db.commit()
    assert trail(db) == [
        ("billing_period.close", treasurer, "2026-03"),
        ("invoice.credit_note", treasurer, note.number),
        ("payment.record", treasurer, str(paid.id)),
        ("sepa.export", treasurer, message_id),
        *[("payment.record", treasurer, str(row.id)) for row in collected],
    ]
    close = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "billing_period.close")).one()
    assert close.details == {"issued_on": "2026-04-01", "invoices": 2, "numbers": [alices, bobs]}
    assert close.at == WHEN
    mandate = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "mandate.add")).first()
    assert mandate is not None
    assert mandate.details["reference"] == "MANDATE-ALICE"
    assert IBAN not in str(mandate.details)
    assert "Alice" not in str(mandate.details)

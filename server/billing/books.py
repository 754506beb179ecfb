"""The treasurer's operations on the database: close a month, verify, credit notes, payments,
what is owed, exports.

Each function checks everything before it writes; the caller commits once. Each change goes
to the audit trail with ``by``, the member who acted (None: a command-line tool).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.audit import audit
from server.billing.errors import InvalidAmount, InvalidInvoice, InvalidMandate
from server.billing.invoices import (
    GENESIS_HASH,
    Invoice,
    InvoiceKind,
    Payer,
    PayerKind,
    credit_note,
    next_number,
)
from server.billing.invoices import verify_chain as verify_invoices
from server.billing.ledger import invoice_entry, payment_entry, refund_entry
from server.billing.periods import Period
from server.billing.sepa import Creditor, DirectDebit, Mandate, SequenceType, build_pain008
from server.billing.store import (
    UnknownRecord,
    append_entries,
    auxiliary_of,
    current_settings,
    find_invoice,
    insert_rows,
    last_invoice,
    load_invoices,
    save_invoices,
)
from server.clock import utc_now
from server.models import (
    BillingPeriod,
    DirectDebitRow,
    InvoiceRow,
    MandateRow,
    Member,
    Organisation,
    PaymentRow,
    SepaFile,
)

if TYPE_CHECKING:
    from server.billing.monthly import CloseResult


class PaymentKind(StrEnum):
    SEPA = "sepa"
    TRANSFER = "transfer"
    CASH = "cash"
    CARD = "card"
    REJECTED = "rejected"
    """A direct debit the debtor's bank returned: the invoice is due again."""


def verify(db: Session) -> int:
    """Check the whole invoice chain; the number of invoices checked, or :class:`ChainBroken`."""
    invoices = [invoice for _, invoice in load_invoices(db)]
    verify_invoices(invoices, GENESIS_HASH)
    return len(invoices)


def close_month(
    db: Session, period: Period, issued_on: date, *, by: int | None = None, now: datetime | None = None
) -> CloseResult:
    """Close ``period`` into invoices (:func:`server.billing.monthly.close_month`), in the audit trail."""
    from server.billing.monthly import close_month as close  # noqa: PLC0415 - the heavy part, when used

    result = close(db, period, issued_on)
    closed = db.scalars(sa.select(BillingPeriod).where(BillingPeriod.period == str(period))).one()
    numbers = db.scalars(
        sa.select(InvoiceRow.number).where(InvoiceRow.period == str(period)).order_by(InvoiceRow.id)
    ).all()
    audit(
        db, "billing_period.close", "billing_period", str(period), actor_id=by, at=now or utc_now(),
        details={"issued_on": issued_on, "invoices": closed.invoice_count,
                 "numbers": [numbers[0], numbers[-1]] if numbers else []},
    )  # fmt: skip
    return result


def issue_credit_note(
    db: Session, number: str, issued_on: date, *, by: int | None = None, now: datetime | None = None
) -> Invoice:
    """Reverse invoice ``number`` entirely with a credit note, next in the series, and its entry."""
    _, original = find_invoice(db, number)
    if original.kind is not InvoiceKind.INVOICE:
        raise InvalidInvoice(f"{number} is a credit note: only an invoice is reversed")
    if db.scalar(sa.select(InvoiceRow.number).where(InvoiceRow.credited_invoice == number)):
        raise InvalidInvoice(f"invoice {number} is reversed already")
    last = last_invoice(db)
    note = credit_note(
        original,
        number=next_number(last.number if last else None, issued_on.year),
        issued_on=issued_on,
        previous_hash=last.hash if last else GENESIS_HASH,
    )
    save_invoices(db, [note])
    entry = invoice_entry(note)
    if entry is not None:
        append_entries(db, [entry])
    db.flush()
    audit(
        db, "invoice.credit_note", "invoice", note.number, actor_id=by, at=now or utc_now(),
        details={"credits": number, "total_cents": note.total_cents, "issued_on": issued_on},
    )  # fmt: skip
    return note


def _payer(db: Session, kind: PayerKind, payer_id: int) -> Payer:
    from server.billing.store import member_payer, organisation_payer  # noqa: PLC0415

    if kind is PayerKind.MEMBER:
        member = db.get(Member, payer_id)
        if member is None:
            raise UnknownRecord(f"no member {payer_id}")
        return member_payer(member)
    organisation = db.get(Organisation, payer_id)
    if organisation is None:
        raise UnknownRecord(f"no organisation {payer_id}")
    return organisation_payer(organisation)


def record_payment(
    db: Session,
    *,
    kind: PaymentKind,
    amount_cents: int,
    on: date,
    reference: str,
    invoice: str | None = None,
    payer: tuple[PayerKind, int] | None = None,
    by: int | None = None,
    now: datetime | None = None,
) -> PaymentRow:
    """Record money received (or a rejected direct debit) against an invoice or a payer's account."""
    if amount_cents <= 0:
        raise InvalidAmount(f"a payment is a positive amount, not {amount_cents} cents")
    invoice_row = None
    if invoice is not None:
        invoice_row, found = find_invoice(db, invoice)
        who = found.payer
    elif payer is not None:
        who = _payer(db, *payer)
    else:
        raise InvalidAmount("say which invoice, or which payer, the payment is for")
    if kind is PaymentKind.REJECTED:
        if invoice_row is None:
            raise InvalidAmount("a rejected direct debit names the invoice it was collecting")
        entry = refund_entry(who, amount_cents, on, reference, label=f"Rejet prélèvement {invoice}")
    else:
        entry = payment_entry(who, amount_cents, on, reference)
    ((entry_id, _),) = append_entries(db, [entry])
    row = PaymentRow(
        kind=str(kind),
        payer_kind=str(who.kind),
        payer_id=who.id,
        invoice_id=invoice_row.id if invoice_row else None,
        amount_cents=amount_cents,
        on=on,
        reference=reference,
        entry_id=entry_id,
    )
    db.add(row)
    db.flush()
    audit(
        db, "payment.record", "payment", row.id, actor_id=by, at=now or utc_now(),
        details={"kind": kind, "amount_cents": amount_cents, "on": on, "invoice": invoice,
                 "payer_kind": who.kind, "payer_id": who.id, "reference": reference},
    )  # fmt: skip
    return row


def record_sepa_collected(
    db: Session, message_id: str, on: date, *, by: int | None = None, now: datetime | None = None
) -> list[PaymentRow]:
    """Record every collection of a SEPA file as paid on ``on``."""
    file = db.scalars(sa.select(SepaFile).where(SepaFile.message_id == message_id)).first()
    if file is None:
        raise UnknownRecord(f"no SEPA file {message_id!r}")
    if db.scalar(
        sa.select(PaymentRow.id).where(PaymentRow.reference == message_id, PaymentRow.kind == "sepa")
    ):
        raise InvalidMandate(f"SEPA file {message_id} is recorded as collected already")
    debits = db.execute(
        sa.select(DirectDebitRow.amount_cents, InvoiceRow.number)
        .join(InvoiceRow, InvoiceRow.id == DirectDebitRow.invoice_id)
        .where(DirectDebitRow.sepa_file_id == file.id)
        .order_by(DirectDebitRow.id)
    ).all()
    return [
        record_payment(
            db,
            kind=PaymentKind.SEPA,
            amount_cents=amount,
            on=on,
            reference=message_id,
            invoice=number,
            by=by,
            now=now,
        )
        for amount, number in debits
    ]


@dataclass(frozen=True)
class Outstanding:
    number: str
    payer: str
    due_on: date
    total_cents: int
    due_cents: int


def outstanding(db: Session) -> list[Outstanding]:
    """Invoices not yet paid in full: total - payments + rejected debits - credit notes."""
    paid: dict[int, int] = defaultdict(int)
    for invoice_id, kind, amount in db.execute(
        sa.select(PaymentRow.invoice_id, PaymentRow.kind, PaymentRow.amount_cents).where(
            PaymentRow.invoice_id.is_not(None)
        )
    ):
        if invoice_id is not None:
            paid[invoice_id] += -amount if kind == PaymentKind.REJECTED else amount
    credited = dict(
        db.execute(
            sa.select(InvoiceRow.credited_invoice, InvoiceRow.total_cents).where(
                InvoiceRow.kind == str(InvoiceKind.CREDIT_NOTE)
            )
        ).all()
    )
    result = []
    for row in db.scalars(
        sa.select(InvoiceRow).where(InvoiceRow.kind == str(InvoiceKind.INVOICE)).order_by(InvoiceRow.id)
    ):
        due = row.total_cents - paid[row.id] + credited.get(row.number, 0)
        if due > 0:
            result.append(Outstanding(row.number, row.payer_name, row.due_on, row.total_cents, due))
    return result


def due_on_invoice(db: Session, number: str) -> int:
    return next((o.due_cents for o in outstanding(db) if o.number == number), 0)


def add_mandate(
    db: Session,
    kind: PayerKind,
    payer_id: int,
    *,
    reference: str,
    debtor: str,
    iban: str,
    signed_on: date,
    bic: str = "",
    by: int | None = None,
    now: datetime | None = None,
) -> MandateRow:
    """Store a payer's mandate, checked first (IBAN, BIC, reference): a wrong one is refused, nothing saved."""
    checked = Mandate(reference, debtor, iban, signed_on, bic=bic)
    _payer(db, kind, payer_id)
    row = MandateRow(
        payer_kind=str(kind),
        payer_id=payer_id,
        reference=checked.reference,
        debtor_name=checked.debtor_name,
        iban=checked.iban,
        bic=checked.bic,
        signed_on=signed_on,
    )
    db.add(row)
    db.flush()
    # No IBAN nor debtor name in the trail: erasing the payer could not take them out of it.
    audit(
        db, "mandate.add", "mandate", row.id, actor_id=by, at=now or utc_now(),
        details={"payer_kind": kind, "payer_id": payer_id, "reference": row.reference},
    )  # fmt: skip
    return row


def export_sepa(
    db: Session, period: Period, collection_date: date, created_at: datetime, *, by: int | None = None
) -> tuple[str, bytes, int]:
    """The pain.008 file collecting what is due on ``period``'s invoices from payers with a mandate.

    Returns the message id, the document and the number of collections; the file and its
    collections are recorded (a later file for a mandate is then RCUR). Everything is
    checked (creditor, every mandate, the schema) before anything is recorded.
    """
    settings = current_settings(db)
    if not (settings.creditor_id and settings.iban and settings.bic):
        raise InvalidMandate("the association's creditor identifier (ICS), IBAN and BIC are needed for SEPA")
    creditor = Creditor(settings.name, settings.iban, settings.bic, settings.creditor_id)
    mandates: dict[tuple[str, int], MandateRow] = {}
    for stored in db.scalars(sa.select(MandateRow).order_by(MandateRow.id)):
        mandates[(stored.payer_kind, stored.payer_id)] = stored
    used = set(db.scalars(sa.select(DirectDebitRow.mandate_id).distinct()))
    due = {o.number: o.due_cents for o in outstanding(db)}
    debits: list[DirectDebit] = []
    rows: list[tuple[int, int, DirectDebit]] = []
    for row, invoice in load_invoices(
        db, sa.and_(InvoiceRow.period == str(period), InvoiceRow.kind == str(InvoiceKind.INVOICE))
    ):
        mandate_row = mandates.get((row.payer_kind, row.payer_id))
        if mandate_row is None or due.get(invoice.number, 0) <= 0:
            continue
        mandate = Mandate(
            mandate_row.reference,
            mandate_row.debtor_name,
            mandate_row.iban,
            mandate_row.signed_on,
            SequenceType.RECURRENT if mandate_row.id in used else SequenceType.FIRST,
            mandate_row.bic,
        )
        debit = DirectDebit(
            invoice.number, due[invoice.number], mandate, collection_date, f"Facture {invoice.number}"
        )
        debits.append(debit)
        rows.append((mandate_row.id, row.id, debit))
    if not debits:
        raise InvalidMandate(f"nothing to collect for {period}: no invoice due from a payer with a mandate")
    count = db.scalar(sa.select(sa.func.count()).select_from(SepaFile)) or 0
    message_id = f"ATELIER-{period}-{count + 1:03d}"
    document = build_pain008(creditor, debits, message_id=message_id, created_at=created_at)
    file = SepaFile(
        message_id=message_id,
        period=str(period),
        created_at=created_at,
        collection_date=collection_date,
        document=document,
    )
    db.add(file)
    db.flush()
    insert_rows(
        db,
        DirectDebitRow,
        [
            {
                "sepa_file_id": file.id,
                "mandate_id": mandate_id,
                "invoice_id": invoice_id,
                "amount_cents": debit.amount_cents,
                "sequence": str(debit.mandate.sequence),
            }
            for mandate_id, invoice_id, debit in rows
        ],
    )
    audit(
        db, "sepa.export", "sepa_file", message_id, actor_id=by, at=created_at,
        details={"period": str(period), "collection_date": collection_date, "collections": len(debits),
                 "total_cents": sum(debit.amount_cents for debit in debits)},
    )  # fmt: skip
    return message_id, document, len(debits)


def balance_report(db: Session) -> list[tuple[str, str, int]]:
    """(auxiliary account, name, balance) of every payer with postings."""
    from server.billing.store import balances  # noqa: PLC0415

    names = {auxiliary_of(PayerKind.MEMBER, m.id): m.name for m in db.scalars(sa.select(Member))}
    names |= {auxiliary_of(PayerKind.ORGANISATION, o.id): o.name for o in db.scalars(sa.select(Organisation))}
    return [(aux, names.get(aux, ""), total) for aux, total in balances(db).items()]

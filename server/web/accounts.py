"""A payer's money as the pages show it: balance, invoices with what is due, what sessions cost.

A session billed already costs what its usage charge says (fee, metered time, minimum top-up,
before the day's cap). One not billed yet is priced as the close would rate it on its own,
at the price list the member pays by today: an estimate, shown as one, since plan minutes
and the daily cap are counted only at the close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing.books import outstanding
from server.billing.errors import BillingError
from server.billing.invoices import Invoice, PayerKind
from server.billing.periods import workshop_day
from server.billing.prices import PriceBook
from server.billing.rating import charge_session
from server.billing.store import auxiliary_of, current_settings, load_invoices, price_books
from server.models import (
    InvoiceRow,
    Machine,
    Member,
    Organisation,
    PostingRow,
    PriceList,
    UsageCharge,
    UsageSession,
)

RECEIVABLE = "411000"


def balance_of(db: Session, kind: PayerKind, payer_id: int) -> int:
    """What the payer owes (positive) or holds in credit (negative), in cents."""
    total = db.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(PostingRow.debit_cents - PostingRow.credit_cents), 0)).where(
            PostingRow.account == RECEIVABLE, PostingRow.auxiliary == auxiliary_of(kind, payer_id)
        )
    )
    return int(total or 0)


@dataclass(frozen=True)
class InvoiceSummary:
    number: str
    kind: str
    period: str
    issued_on: date
    due_on: date
    total_cents: int
    due_cents: int


def invoices_of(db: Session, where: sa.ColumnElement[bool], limit: int = 100) -> list[InvoiceSummary]:
    """Invoices and credit notes ``where`` selects, newest first, with what is still due on each."""
    ids = list(db.scalars(sa.select(InvoiceRow.id).where(where).order_by(InvoiceRow.id.desc()).limit(limit)))
    if not ids:
        return []
    due = {o.number: o.due_cents for o in outstanding(db)}
    found: list[tuple[InvoiceRow, Invoice]] = load_invoices(db, InvoiceRow.id.in_(ids))
    return [
        InvoiceSummary(
            invoice.number,
            str(invoice.kind),
            str(invoice.period),
            invoice.issued_on,
            invoice.due_on,
            invoice.total_cents,
            due.get(invoice.number, 0),
        )
        for _, invoice in sorted(found, key=lambda pair: -pair[0].id)
    ]


def member_invoices(member_id: int) -> sa.ColumnElement[bool]:
    return sa.and_(InvoiceRow.payer_kind == str(PayerKind.MEMBER), InvoiceRow.payer_id == member_id)


@dataclass(frozen=True)
class Cost:
    cents: int
    billed: bool
    """True: as invoiced; False: an estimate before plan minutes and the daily cap."""


def _price_list_of(db: Session, member: Member) -> str | None:
    """The code of the list the member pays by today, as the close decides it."""
    try:
        settings = current_settings(db)
    except BillingError:
        return None
    list_id = None
    if member.organisation_id is not None:
        organisation = db.get(Organisation, member.organisation_id)
        if organisation is None:
            return None
        list_id = organisation.price_list_id
        if list_id is None:
            return settings.default_price_list
    list_id = list_id or member.price_list_id
    if list_id is not None:
        return db.scalar(sa.select(PriceList.code).where(PriceList.id == list_id))
    return settings.partner_price_list if member.partner_association else settings.default_price_list


def session_costs(db: Session, member: Member, sessions: list[UsageSession]) -> dict[int, Cost | None]:
    """The cost of each session by its row id; None when no price applies to it."""
    ids = [session.id for session in sessions]
    costs: dict[int, Cost | None] = {}
    if not ids:
        return costs
    for session_id, fee, metered, topup in db.execute(
        sa.select(
            UsageCharge.usage_session_id,
            UsageCharge.fee_cents,
            UsageCharge.metered_cents,
            UsageCharge.minimum_topup_cents,
        ).where(UsageCharge.usage_session_id.in_(ids))
    ):
        costs[session_id] = Cost(fee + metered + topup, billed=True)
    unbilled = [session for session in sessions if session.id not in costs]
    code = _price_list_of(db, member) if unbilled else None
    book: PriceBook | None = price_books(db).get(code) if code else None
    classes = dict(db.execute(sa.select(Machine.id, Machine.machine_class)).all()) if book else {}
    for session in unbilled:
        costs[session.id] = None
        if book is None:
            continue
        try:
            version = book.version_for(
                session.machine.slug, classes.get(session.machine_id, ""), workshop_day(session.started_at)
            )
        except (BillingError, LookupError):
            continue
        charge = charge_session(version, session.running_ms, session.idle_ms)
        costs[session.id] = Cost(charge.total_cents, billed=False)
    return costs

"""The month close on the database: unbilled sessions, plan fees and sales become invoices.

:func:`close_month` reads everything it needs, hands it to the pure
:func:`server.billing.close.close_period`, and writes the invoices, their lines, how each
session was rated, the sales billed, the sales-journal entries and the closed period, in
the caller's one transaction. Every check runs before the first write; a refusal changes
nothing. A session of a closed month that arrives late is simply still unbilled at the
next close, and the rating engine makes it an adjustment line there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing.close import ClosedPeriod, PayerUsage, check_can_close, close_period
from server.billing.errors import InvalidPeriod
from server.billing.invoices import GENESIS_HASH, Payer, PayerKind
from server.billing.lines import CAPPED_KINDS, ChargeLine, MachineRef, MemberRef, Unit
from server.billing.money import Rate
from server.billing.periods import Period, workshop_day
from server.billing.prices import Consumable, PriceBook
from server.billing.rating import (
    ConsumableSale,
    MeteredSession,
    RatedSession,
    SessionCharge,
    plan_fee_line,
    rate_usage,
)
from server.billing.store import (
    append_entries,
    current_settings,
    insert_rows,
    last_invoice,
    member_payer,
    organisation_payer,
    plans_by_month,
    price_books,
    save_invoices,
    seller_of,
)
from server.db import table
from server.models import (
    BillingPeriod,
    ConsumableRow,
    ConsumableSaleRow,
    InvoiceLineRow,
    Machine,
    Member,
    Organisation,
    PriceList,
    SaleCharge,
    UsageCharge,
    UsageSession,
)


@dataclass(frozen=True)
class CloseResult:
    closed: ClosedPeriod
    sessions: int
    late_sessions: int


def closed_periods(db: Session) -> list[Period]:
    return [Period.parse(p) for p in db.scalars(sa.select(BillingPeriod.period))]


def _books_for(db: Session, books: dict[str, PriceBook]) -> tuple[dict[int, PriceBook], dict[int, PriceBook]]:
    """The price book each member and each organisation pays by."""
    settings = current_settings(db)
    codes = dict(db.execute(sa.select(PriceList.id, PriceList.code)).all())

    def book(code: str) -> PriceBook:
        if code not in books:
            raise InvalidPeriod(f"price list {code!r} does not exist: add its prices first")
        return books[code]

    members: dict[int, PriceBook] = {}
    for member_id, list_id, partner in db.execute(
        sa.select(Member.id, Member.price_list_id, Member.partner_association)
    ):
        if list_id is not None:
            members[member_id] = book(codes[list_id])
        elif partner:
            members[member_id] = book(settings.partner_price_list)
        elif settings.default_price_list in books:
            members[member_id] = books[settings.default_price_list]
    organisations = {
        org_id: book(codes[list_id]) if list_id is not None else book(settings.default_price_list)
        for org_id, list_id in db.execute(sa.select(Organisation.id, Organisation.price_list_id))
    }
    return members, organisations


def close_month(db: Session, period: Period, issued_on: date) -> CloseResult:
    """Close ``period``: refused (nothing written) if it is closed, out of order or not over."""
    closed = closed_periods(db)
    settings = current_settings(db)
    seller = seller_of(settings)
    start, end = period.bounds()
    check_can_close(period, closed, issued_on)

    machines = {
        row.id: MachineRef(row.slug, row.name, row.machine_class)
        for row in db.execute(sa.select(Machine.id, Machine.slug, Machine.name, Machine.machine_class))
    }
    member_rows = {row.id: row for row in db.scalars(sa.select(Member))}
    members = {mid: MemberRef(mid, row.name) for mid, row in member_rows.items()}
    organisations = {row.id: row for row in db.scalars(sa.select(Organisation))}
    books = price_books(db)
    member_books, organisation_books = _books_for(db, books)

    def payer_key(member_id: int) -> tuple[PayerKind, int]:
        org = member_rows[member_id].organisation_id
        return (PayerKind.ORGANISATION, org) if org is not None else (PayerKind.MEMBER, member_id)

    sessions_table, charges = table(UsageSession), table(UsageCharge)
    query = (
        sa.select(
            sessions_table.c.id,
            sessions_table.c.session_id,
            sessions_table.c.member_id,
            sessions_table.c.machine_id,
            sessions_table.c.started_at,
            sessions_table.c.running_ms,
            sessions_table.c.idle_ms,
        )
        .outerjoin(charges, charges.c.usage_session_id == sessions_table.c.id)
        .where(
            charges.c.id.is_(None),
            sessions_table.c.member_id.is_not(None),
            sessions_table.c.ended_at.is_not(None),
            sessions_table.c.started_at < end,
        )
    )
    by_payer: dict[tuple[PayerKind, int], list[MeteredSession]] = defaultdict(list)
    row_ids: dict[str, int] = {}
    late = 0
    for row_id, session_id, member_id, machine_id, started_at, running_ms, idle_ms in db.execute(query):
        row_ids[session_id] = row_id
        if started_at < start:
            late += 1
        by_payer[payer_key(member_id)].append(
            MeteredSession(
                session_id, members[member_id], machines[machine_id], started_at, running_ms, idle_ms
            )
        )

    sales_by_payer, sale_ids = _unbilled_sales(db, end, members, machines)
    late_days = {
        workshop_day(s.started_at) for group in by_payer.values() for s in group if s.started_at < start
    }
    months = {period} | {Period.of(day) for day in late_days}
    plans = plans_by_month(db, months)
    used, before = _already_billed(db, late_days, period) if late_days else ({}, {})

    usage: dict[tuple[PayerKind, int], list[ChargeLine]] = defaultdict(list)
    rated: list[tuple[tuple[PayerKind, int], RatedSession]] = []
    for key in sorted(set(by_payer) | set(sales_by_payer)):
        kind, payer_id = key
        book = organisation_books[payer_id] if kind is PayerKind.ORGANISATION else member_books.get(payer_id)
        if book is None:
            raise InvalidPeriod(f"member {payer_id} has no price list and there is no default one")
        rating = rate_usage(
            by_payer.get(key, ()),
            book,
            plans=plans,
            plan_minutes_used=used,
            charged_before=before,
            sales=sales_by_payer.get(key, ()),
            billing_period=period,
        )
        usage[key].extend(rating.lines)
        rated.extend((key, r) for r in rating.sessions)
    for (member_id, month), plan in sorted(plans.items(), key=lambda item: item[0][0]):
        if month == period and plan.monthly_fee_cents and member_id in members:
            usage[(PayerKind.MEMBER, member_id)].append(plan_fee_line(members[member_id], plan, period))

    def payer_of(key: tuple[PayerKind, int]) -> Payer:
        kind, payer_id = key
        if kind is PayerKind.ORGANISATION:
            return organisation_payer(organisations[payer_id])
        return member_payer(member_rows[payer_id])

    last = last_invoice(db)
    result = close_period(
        period,
        [PayerUsage(payer_of(key), tuple(lines)) for key, lines in usage.items()],
        closed=closed,
        issued_on=issued_on,
        seller=seller,
        due_days=settings.due_days,
        last_number=last.number if last else None,
        last_hash=last.hash if last else GENESIS_HASH,
    )

    invoice_ids = save_invoices(db, result.invoices)
    insert_rows(db, UsageCharge, [_charge_row(r, row_ids, invoice_ids.get(key), period) for key, r in rated])
    insert_rows(
        db,
        SaleCharge,
        [
            {"consumable_sale_id": sale_id, "invoice_id": invoice_ids[key], "period": str(period)}
            for key, ids in sale_ids.items()
            for sale_id in ids
        ],
    )
    append_entries(db, result.entries)
    db.add(BillingPeriod(period=str(period), issued_on=issued_on, invoice_count=len(result.invoices)))
    db.flush()
    return CloseResult(result, len(rated), late)


def _charge_row(
    rated: RatedSession, row_ids: dict[str, int], invoice_id: int | None, period: Period
) -> dict[str, Any]:
    charge = rated.charge
    return {
        "usage_session_id": row_ids[rated.session_id],
        "invoice_id": invoice_id,
        "period": str(period),
        "day": rated.day,
        "member_id": rated.member_id,
        "machine": rated.machine,
        "price_version": rated.price_version,
        "free_try": charge.free_try,
        "running_minutes": charge.running_minutes,
        "included_minutes": charge.included_minutes,
        "idle_minutes": charge.idle_minutes,
        "fee_cents": charge.fee_cents,
        "metered_cents": charge.metered_cents,
        "minimum_topup_cents": charge.minimum_topup_cents,
        "adjustment_for": str(rated.adjustment_for) if rated.adjustment_for else None,
    }


def _unbilled_sales(
    db: Session, end: Any, members: dict[int, MemberRef], machines: dict[int, MachineRef]
) -> tuple[dict[tuple[PayerKind, int], list[ConsumableSale]], dict[tuple[PayerKind, int], list[int]]]:
    consumables = {
        row.id: Consumable(
            row.code, row.name, Unit(row.unit), Rate(row.unit_cents, row.unit_per), row.vat_rate_bp
        )
        for row in db.scalars(sa.select(ConsumableRow))
    }
    organisation_of = dict(db.execute(sa.select(Member.id, Member.organisation_id)).all())
    sales, charged = table(ConsumableSaleRow), table(SaleCharge)
    query = (
        sa.select(sales)
        .outerjoin(charged, charged.c.consumable_sale_id == sales.c.id)
        .where(charged.c.consumable_sale_id.is_(None), sales.c.sold_at < end)
    )
    found: dict[tuple[PayerKind, int], list[ConsumableSale]] = defaultdict(list)
    ids: dict[tuple[PayerKind, int], list[int]] = defaultdict(list)
    for row in db.execute(query):
        org = organisation_of.get(row.member_id)
        key = (PayerKind.ORGANISATION, org) if org is not None else (PayerKind.MEMBER, row.member_id)
        machine = machines.get(row.machine_id) if row.machine_id is not None else None
        found[key].append(
            ConsumableSale(
                row.sale_id,
                members[row.member_id],
                row.sold_at,
                consumables[row.consumable_id],
                row.quantity,
                machine,
            )
        )
        ids[key].append(row.id)
    return found, ids


def _already_billed(
    db: Session, days: set[date], period: Period
) -> tuple[dict[tuple[int, Period, str], int], dict[tuple[int, str, date], int]]:
    """Plan minutes used and capped amounts invoiced before, for the days late sessions fall on."""
    classes = dict(db.execute(sa.select(Machine.slug, Machine.machine_class)).all())
    used: dict[tuple[int, Period, str], int] = defaultdict(int)
    months = {Period.of(day) for day in days}
    first = min(m.first_day for m in months)
    rows = db.execute(
        sa.select(
            UsageCharge.member_id, UsageCharge.machine, UsageCharge.day, UsageCharge.included_minutes
        ).where(
            UsageCharge.day >= first, UsageCharge.day < period.first_day, UsageCharge.included_minutes > 0
        )
    )
    for member_id, machine, day, minutes in rows:
        used[(member_id, Period.of(day), classes.get(machine, ""))] += minutes
    before: dict[tuple[int, str, date], int] = defaultdict(int)
    lines = db.execute(
        sa.select(
            InvoiceLineRow.member_id, InvoiceLineRow.machine, InvoiceLineRow.day, InvoiceLineRow.amount_cents
        ).where(InvoiceLineRow.day.in_(sorted(days)), InvoiceLineRow.kind.in_([str(k) for k in CAPPED_KINDS]))
    )
    for member_id, machine, line_day, amount in lines:
        if line_day is not None:
            before[(member_id, machine, line_day)] += amount
    return dict(used), dict(before)


def rated_sessions(db: Session, period: Period) -> Sequence[RatedSession]:
    """How each session billed in ``period`` was rated (for the CSV export)."""
    charges, sessions = table(UsageCharge), table(UsageSession)
    query = (
        sa.select(charges, sessions.c.session_id)
        .join(sessions, sessions.c.id == charges.c.usage_session_id)
        .where(charges.c.period == str(period))
        .order_by(charges.c.id)
    )
    return [
        RatedSession(
            row.session_id,
            row.member_id,
            row.machine,
            row.day,
            row.price_version,
            SessionCharge(
                row.free_try,
                row.running_minutes,
                row.included_minutes,
                row.idle_minutes,
                row.fee_cents,
                row.metered_cents,
                row.minimum_topup_cents,
            ),
            Period.parse(row.adjustment_for) if row.adjustment_for else None,
        )
        for row in db.execute(query)
    ]

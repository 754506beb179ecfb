"""The month close on the database: unbilled sessions, plan fees and sales become invoices.

:func:`close_month` reads everything it needs (a :class:`~server.billing.closing.CloseInput`),
has it rated and invoiced by :mod:`server.billing.closing` (the pure rules of
:mod:`~server.billing.rating` and :mod:`~server.billing.close`), and writes the invoices,
their lines, how each session was rated, the sales billed, the sales-journal entries and
the closed period, in the caller's one transaction. Every check on the month runs before
the first write, and a refusal changes nothing. A session of a closed month that arrives
late is simply still unbilled at the next close, and the rating engine makes it an
adjustment line there.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from server.billing.close import ClosedPeriod, check_can_close
from server.billing.closing import (
    PARALLEL_FROM,
    USAGE_CHARGE_COLUMNS,
    Batch,
    CloseInput,
    StoredSession,
    batches,
    can_fork,
    utc,
    without_cyclic_gc,
)
from server.billing.errors import InvalidPeriod
from server.billing.invoices import GENESIS_HASH, Invoice, PayerKind
from server.billing.ledger import JournalEntry, number_entries
from server.billing.lines import CAPPED_KINDS, MachineRef, MemberRef, Unit
from server.billing.money import Rate
from server.billing.periods import Period, workshop_day
from server.billing.prices import Consumable, PriceBook
from server.billing.rating import ConsumableSale, RatedSession, RatingCache, SessionCharge, plan_fee_line
from server.billing.store import (
    INVOICE_LINE_COLUMNS,
    POSTING_COLUMNS,
    add_line_rows,
    current_settings,
    driver_date,
    insert_rows,
    insert_tuples,
    invoice_row,
    journal_rows,
    last_entry_numbers,
    last_invoice,
    member_payer,
    next_id,
    organisation_payer,
    plans_by_month,
    price_books,
    seller_of,
)
from server.db import table
from server.models import (
    BillingPeriod,
    BillingSettings,
    ConsumableRow,
    ConsumableSaleRow,
    InvoiceLineRow,
    InvoiceRow,
    JournalEntryRow,
    Machine,
    Member,
    Organisation,
    PostingRow,
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


def close_month(db: Session, period: Period, issued_on: date, *, parallel: bool | None = None) -> CloseResult:
    """Close ``period``: refused (nothing written) if it is closed, out of order or not over.

    ``parallel``: rate and invoice in a second process while this one writes (None: for
    a big month, when it can; see :func:`server.billing.closing.batches`).
    """
    closed = closed_periods(db)
    settings = current_settings(db)
    check_can_close(period, closed, issued_on)
    with without_cyclic_gc(), _sqlite_cache(db):
        close, late = _close_input(db, period, issued_on, settings)
        if parallel is None:
            parallel = len(close.sessions) >= PARALLEL_FROM and can_fork()
        invoices: list[Invoice] = []
        entries: list[JournalEntry] = []
        rated = 0
        with _savepoint(db) if parallel else nullcontext():
            write = _Writer(db)
            for batch in batches(close, parallel=parallel):
                write(batch)
                invoices.extend(batch.invoices)
                entries.extend(batch.entries)
                rated += batch.sessions
            db.add(BillingPeriod(period=str(period), issued_on=issued_on, invoice_count=len(invoices)))
            db.flush()
    last_number, last_hash = (
        (invoices[-1].number, invoices[-1].hash) if invoices else (close.last_number, close.last_hash)
    )
    return CloseResult(
        ClosedPeriod(period, tuple(invoices), tuple(entries), last_number, last_hash), rated, late
    )


def _close_input(
    db: Session, period: Period, issued_on: date, settings: BillingSettings
) -> tuple[CloseInput, int]:
    """Everything the close computes from, and how many of its sessions are late."""
    start, end = period.bounds()
    machines = {
        row.id: MachineRef(row.slug, row.name, row.machine_class)
        for row in db.execute(sa.select(Machine.id, Machine.slug, Machine.name, Machine.machine_class))
    }
    member_rows = {row.id: row for row in db.scalars(sa.select(Member))}
    members = {mid: MemberRef(mid, row.name) for mid, row in member_rows.items()}
    books = price_books(db)
    member_books, organisation_books = _books_for(db, books)
    payer_of = {
        mid: (PayerKind.ORGANISATION, row.organisation_id)
        if row.organisation_id is not None
        else (PayerKind.MEMBER, mid)
        for mid, row in member_rows.items()
    }
    sessions, late_days, late = _unbilled_sessions(db, start, end)
    sales, sale_ids = _unbilled_sales(db, end, members, machines)
    plans = plans_by_month(db, {period} | {Period.of(day) for day in late_days})
    used, before = _already_billed(db, late_days, period) if late_days else ({}, {})
    caches = {id(book): RatingCache(book) for book in books.values()}
    prices: dict[tuple[PayerKind, int], RatingCache] = {}
    for key in sorted({payer_of[session[2]] for session in sessions} | set(sales)):
        kind, payer_id = key
        book = organisation_books[payer_id] if kind is PayerKind.ORGANISATION else member_books.get(payer_id)
        if book is None:
            raise InvalidPeriod(f"member {payer_id} has no price list and there is no default one")
        prices[key] = caches[id(book)]
    plan_fees = {
        (PayerKind.MEMBER, member_id): plan_fee_line(members[member_id], plan, period)
        for (member_id, month), plan in plans.items()
        if month == period and plan.monthly_fee_cents and member_id in members
    }
    organisations = {row.id: row for row in db.scalars(sa.select(Organisation))}
    payers = {
        key: organisation_payer(organisations[key[1]])
        if key[0] is PayerKind.ORGANISATION
        else member_payer(member_rows[key[1]])
        for key in prices.keys() | plan_fees.keys()
    }
    last = last_invoice(db)
    close = CloseInput(
        period=period, issued_on=issued_on, seller=seller_of(settings), due_days=settings.due_days,
        last_number=last.number if last else None, last_hash=last.hash if last else GENESIS_HASH,
        sessions=sessions, payer_of=payer_of, members=members, machines=machines, payers=payers, prices=prices,
        sales=sales, sale_ids=sale_ids, plan_fees=plan_fees, plans=plans, plan_minutes_used=used,
        charged_before=before, first_invoice_id=next_id(db, InvoiceRow), day_value=driver_date(db),
    )  # fmt: skip
    return close, late


class _Writer:
    """Writes batches in order: their invoices and lines, rated sessions, sales, and entries
    (numbered after the last of their journal)."""

    def __init__(self, db: Session) -> None:
        self.db = db
        self.day_value = driver_date(db)
        self.entry_id = next_id(db, JournalEntryRow)
        self.entry_numbers = last_entry_numbers(db)

    def __call__(self, batch: Batch) -> None:
        db = self.db
        line_rows: list[tuple[Any, ...]] = []
        for invoice_id, invoice in enumerate(batch.invoices, start=batch.first_invoice_id):
            add_line_rows(line_rows, invoice_id, invoice, self.day_value)
        insert_rows(
            db, InvoiceRow, [invoice_row(i, n) for n, i in enumerate(batch.invoices, batch.first_invoice_id)]
        )
        insert_tuples(db, InvoiceLineRow, INVOICE_LINE_COLUMNS, line_rows)
        insert_tuples(db, UsageCharge, USAGE_CHARGE_COLUMNS, batch.charge_rows)
        insert_rows(db, SaleCharge, batch.sale_rows)
        numbered = number_entries(batch.entries, self.entry_numbers)
        for entry in numbered:
            self.entry_numbers[entry.journal.code] = entry.number or 0
        entry_rows, posting_rows = journal_rows(numbered, self.entry_id)
        self.entry_id += len(numbered)
        insert_rows(db, JournalEntryRow, entry_rows)
        insert_tuples(db, PostingRow, POSTING_COLUMNS, posting_rows)


@contextmanager
def _savepoint(db: Session) -> Iterator[None]:
    """Writes that are undone if anything fails, in the caller's transaction."""
    connection = db.connection()
    driver = connection.connection.driver_connection
    if isinstance(driver, sqlite3.Connection) and not driver.in_transaction:
        # The sqlite3 module only begins a transaction before a write: a SAVEPOINT would
        # begin (and its RELEASE end) one of its own, committing the close behind the
        # caller's back. Begin the caller's now.
        connection.exec_driver_sql("BEGIN")
    with db.begin_nested():
        yield


@contextmanager
def _sqlite_cache(db: Session, kib: int = 1_048_576) -> Iterator[None]:
    """SQLite's page cache raised to ``kib`` KiB, and the file read through memory-mapped I/O,
    for the close; both set back after it.

    A close reads every session and writes a row per session and per line, each checked
    against its session and invoice (foreign keys) and added to indexes: with the usual
    2 MB of cache, SQLite reads the same pages from the file again and again (about half
    of the writing time for a million sessions), and mapping the file saves a copy of
    each page it reads (about a tenth more). The cache only takes what it uses.
    """
    connection = db.connection()
    if connection.dialect.name != "sqlite":
        yield
        return
    cache = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
    mapped = connection.exec_driver_sql("PRAGMA mmap_size").scalar_one()
    connection.exec_driver_sql(f"PRAGMA cache_size = -{int(kib)}")
    connection.exec_driver_sql(f"PRAGMA mmap_size = {1024 * int(kib)}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {int(cache)}")
        connection.exec_driver_sql(f"PRAGMA mmap_size = {int(mapped)}")


def _unbilled_sessions(
    db: Session, start: datetime, end: datetime
) -> tuple[Sequence[StoredSession], set[date], int]:
    """Every ended session started before ``end`` and not billed yet, as the driver gives it
    (one narrow query: the column types' conversions, row by row, were most of its time),
    and the days and number of those started before ``start`` (late ones)."""
    sessions, charges = table(UsageSession), table(UsageCharge)
    started_before: sa.ColumnElement[bool] | sa.TextClause = sessions.c.started_at < end
    if db.get_bind().dialect.name == "sqlite":
        # SQLite would walk its started_at index for this bound, which holds nearly every
        # row, fetching each row apart: reading them in table order is three times faster.
        # The unary + keeps the index out.
        started_before = sa.text("+usage_sessions.started_at < :end").bindparams(
            sa.bindparam("end", end, type_=sessions.c.started_at.type)
        )
    query = (
        sa.select(
            sessions.c.id,
            sessions.c.session_id,
            sessions.c.member_id,
            sessions.c.machine_id,
            sa.type_coerce(sessions.c.started_at, sa.types.NullType()),
            sessions.c.running_ms,
            sessions.c.idle_ms,
            sessions.c.started_at < start,
        )
        .outerjoin(charges, charges.c.usage_session_id == sessions.c.id)
        .where(
            charges.c.id.is_(None),
            sessions.c.member_id.is_not(None),
            sessions.c.ended_at.is_not(None),
            started_before,
        )
    )
    result = db.execute(query)
    if not isinstance(result, CursorResult):
        raise TypeError(f"no cursor behind a {type(result).__name__}")
    # The driver's own tuples (no column here has a conversion): a Row each was a third of the time.
    found: Sequence[StoredSession] = result.cursor.fetchall()
    result.close()
    late = [session for session in found if session[7]]
    return found, {workshop_day(utc(session[4])) for session in late}, len(late)


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

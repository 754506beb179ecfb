"""Rows in, frozen billing dataclasses out, and back: the database side of billing's pure core.

Loading turns rows into :mod:`server.billing.prices`, :mod:`~server.billing.invoices`
and :mod:`~server.billing.ledger` objects; saving writes what the pure functions
produced. Nothing here commits: the caller (a command, the month close) commits once,
so a step either happens whole or not at all.

Invoices and journal entries are given their ids here (the next after the largest),
so that their lines and postings can be written in bulk in the same transaction; the
unique invoice number and (journal, number) make a concurrent writer fail, not interleave.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing.errors import BillingError, InvalidPrice
from server.billing.invoices import Invoice, InvoiceKind, InvoiceLine, Payer, PayerKind, Seller
from server.billing.ledger import BANK, MISC, SALES, Account, Journal, JournalEntry, Posting, number_entries
from server.billing.lines import LineKind, Unit
from server.billing.money import MinuteRounding, Rate
from server.billing.periods import Period
from server.billing.prices import Plan, PriceBook, PriceVersion, check_no_overlap
from server.db import Base, table
from server.models import (
    BillingSettings,
    InvoiceLineRow,
    InvoiceRow,
    JournalEntryRow,
    Machine,
    Member,
    MemberPlan,
    Organisation,
    PlanRow,
    PostingRow,
    PriceList,
    PriceVersionRow,
)

JOURNALS = {journal.code: journal for journal in (SALES, BANK, MISC)}


class NotConfigured(BillingError, LookupError):
    """Billing needs the association's settings (name, SIRET...) before it can invoice."""


class UnknownRecord(BillingError, LookupError):
    """An invoice, member, organisation or file that does not exist."""


def next_id(db: Session, model: type[Base]) -> int:
    column = table(model).c.id
    return int(db.execute(sa.select(sa.func.coalesce(sa.func.max(column), 0))).scalar_one()) + 1


# --- settings and payers -----------------------------------------------------------------


def current_settings(db: Session) -> BillingSettings:
    found = db.scalars(sa.select(BillingSettings).order_by(BillingSettings.id.desc()).limit(1)).first()
    if found is None:
        raise NotConfigured(
            "the association's billing settings are missing (name, address, SIRET): add them first"
        )
    return found


def seller_of(settings: BillingSettings) -> Seller:
    return Seller(
        name=settings.name,
        address=tuple(settings.address.splitlines()),
        siret=settings.siret,
        vat_exempt=settings.vat_exempt,
        vat_number=settings.vat_number,
        payment_terms=settings.payment_terms,
    )


def member_payer(member: Member) -> Payer:
    return Payer(
        PayerKind.MEMBER,
        member.id,
        member.name,
        tuple(member.address.splitlines()),
        f"M{member.id:06d}",
        member.email or "",
    )


def organisation_payer(organisation: Organisation) -> Payer:
    return Payer(
        PayerKind.ORGANISATION,
        organisation.id,
        organisation.name,
        tuple(organisation.address.splitlines()),
        f"O{organisation.id:06d}",
        organisation.email or "",
    )


def auxiliary_of(kind: PayerKind | str, payer_id: int) -> str:
    return f"{'M' if PayerKind(kind) is PayerKind.MEMBER else 'O'}{payer_id:06d}"


# --- prices and plans --------------------------------------------------------------------


def price_version_of(row: Any, price_list: str, machine_slug: str | None) -> PriceVersion:
    return PriceVersion(
        id=row.code,
        price_list=price_list,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        running_rate=Rate(row.running_cents, row.running_per),
        machine=machine_slug,
        machine_class=row.machine_class,
        idle_rate=Rate(row.idle_cents, row.idle_per),
        session_fee_cents=row.session_fee_cents,
        minimum_charge_cents=row.minimum_charge_cents,
        increment_minutes=row.increment_minutes,
        rounding=MinuteRounding(row.rounding),
        grace_minutes=row.grace_minutes,
        daily_cap_cents=row.daily_cap_cents,
        vat_rate_bp=row.vat_rate_bp,
    )


def price_books(db: Session) -> dict[str, PriceBook]:
    """Every price list's versions, by the list's code (an empty book for a list without any)."""
    slugs = dict(db.execute(sa.select(Machine.id, Machine.slug)).all())
    lists = {row.id: row.code for row in db.scalars(sa.select(PriceList))}
    versions: dict[str, list[PriceVersion]] = defaultdict(list)
    for row in db.scalars(sa.select(PriceVersionRow).order_by(PriceVersionRow.id)):
        code = lists[row.price_list_id]
        slug = slugs[row.machine_id] if row.machine_id is not None else None
        versions[code].append(price_version_of(row, code, slug))
    return {code: PriceBook(tuple(versions.get(code, ()))) for code in lists.values()}


def add_price_version(db: Session, price_list: str, **terms: Any) -> PriceVersionRow:
    """Add a version to ``price_list`` (made if new); refused if it overlaps another, nothing saved.

    ``terms`` are :class:`PriceVersionRow` columns, with ``machine`` (a slug) instead of
    ``machine_id``.
    """
    list_row = db.scalars(sa.select(PriceList).where(PriceList.code == price_list)).first()
    if list_row is None:
        list_row = PriceList(code=price_list, name=price_list.capitalize())
        db.add(list_row)
        db.flush()
    machine_slug = terms.pop("machine", None)
    if machine_slug is not None:
        machine = db.scalars(sa.select(Machine).where(Machine.slug == machine_slug)).first()
        if machine is None:
            raise InvalidPrice(f"no machine {machine_slug!r}")
        terms["machine_id"] = machine.id
    defaults: dict[str, Any] = {
        "running_per": 1, "idle_cents": 0, "idle_per": 1, "session_fee_cents": 0,
        "minimum_charge_cents": 0, "increment_minutes": 1, "rounding": "up", "grace_minutes": 0,
        "vat_rate_bp": 2000,
    }  # fmt: skip
    row = PriceVersionRow(price_list_id=list_row.id, **(defaults | terms))
    candidate = price_version_of(row, price_list, machine_slug)
    existing = price_books(db).get(price_list)
    check_no_overlap([*(existing.versions if existing else ()), candidate])
    db.add(row)
    db.flush()
    return row


def plan_of(row: PlanRow) -> Plan:
    return Plan(
        row.code,
        row.name,
        row.monthly_fee_cents,
        {m.machine_class: m.minutes for m in row.included},
        row.vat_rate_bp,
    )


def plans_by_month(db: Session, months: Iterable[Period]) -> dict[tuple[int, Period], Plan]:
    """Each member's plan in each of ``months``: the latest choice made from on or before its first day."""
    plans = {row.id: plan_of(row) for row in db.scalars(sa.select(PlanRow))}
    choices: dict[int, list[tuple[date, int | None]]] = defaultdict(list)
    rows = db.execute(
        sa.select(MemberPlan.member_id, MemberPlan.valid_from, MemberPlan.plan_id).order_by(
            MemberPlan.valid_from
        )
    )
    for member_id, valid_from, plan_id in rows:
        choices[member_id].append((valid_from, plan_id))
    found: dict[tuple[int, Period], Plan] = {}
    for month in set(months):
        for member_id, dated in choices.items():
            current = None
            for valid_from, plan_id in dated:
                if valid_from <= month.first_day:
                    current = plan_id
            if current is not None:
                found[(member_id, month)] = plans[current]
    return found


# --- invoices ------------------------------------------------------------------------------


def _line_of(row: Any) -> InvoiceLine:
    price = Rate(row.unit_price_cents, row.unit_price_per) if row.unit_price_cents is not None else None
    return InvoiceLine(
        position=row.position,
        kind=LineKind(row.kind),
        member_id=row.member_id,
        member_name=row.member_name,
        quantity=row.quantity,
        unit=Unit(row.unit),
        unit_price=price,
        amount_cents=row.amount_cents,
        vat_rate_bp=row.vat_rate_bp,
        vat_cents=row.vat_cents,
        machine=row.machine,
        machine_name=row.machine_name,
        day=row.day,
        item=row.item,
        price_version=row.price_version,
        adjustment_for=Period.parse(row.adjustment_for) if row.adjustment_for else None,
    )


def invoice_of(row: InvoiceRow, lines: Sequence[Any]) -> Invoice:
    return Invoice(
        number=row.number,
        kind=InvoiceKind(row.kind),
        issued_on=row.issued_on,
        due_on=row.due_on,
        period=Period.parse(row.period),
        seller=Seller(
            row.seller_name,
            tuple(row.seller_address.splitlines()),
            row.seller_siret,
            row.seller_vat_exempt,
            row.seller_vat_number,
            row.seller_payment_terms,
        ),
        payer=Payer(
            PayerKind(row.payer_kind),
            row.payer_id,
            row.payer_name,
            tuple(row.payer_address.splitlines()),
            row.payer_reference,
            row.payer_email,
        ),
        lines=tuple(_line_of(line) for line in lines),
        total_excl_vat_cents=row.total_excl_vat_cents,
        vat_cents=row.vat_cents,
        total_cents=row.total_cents,
        previous_hash=row.previous_hash,
        hash=row.hash,
        credited_invoice=row.credited_invoice,
    )


def load_invoices(db: Session, where: Any = None) -> list[tuple[InvoiceRow, Invoice]]:
    """Invoices (all, or those ``where`` selects) in order of issue, with their lines."""
    query = sa.select(InvoiceRow).order_by(InvoiceRow.id)
    if where is not None:
        query = query.where(where)
    rows = list(db.scalars(query))
    lines: dict[int, list[Any]] = defaultdict(list)
    ids = [row.id for row in rows]
    line_table = table(InvoiceLineRow)
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        query_lines = (
            sa.select(line_table)
            .where(line_table.c.invoice_id.in_(chunk))
            .order_by(line_table.c.invoice_id, line_table.c.position)
        )
        for line in db.execute(query_lines):
            lines[line.invoice_id].append(line)
    return [(row, invoice_of(row, lines[row.id])) for row in rows]


def find_invoice(db: Session, number: str) -> tuple[InvoiceRow, Invoice]:
    found = load_invoices(db, InvoiceRow.number == number)
    if not found:
        raise UnknownRecord(f"no invoice {number!r}")
    return found[0]


def last_invoice(db: Session) -> InvoiceRow | None:
    return db.scalars(sa.select(InvoiceRow).order_by(InvoiceRow.id.desc()).limit(1)).first()


def save_invoices(db: Session, invoices: Sequence[Invoice]) -> dict[tuple[PayerKind, int], int]:
    """Insert ``invoices`` and their lines; the new ids by payer (kind, id)."""
    first = next_id(db, InvoiceRow)
    day_value = driver_date(db)
    ids: dict[tuple[PayerKind, int], int] = {}
    line_rows: list[tuple[Any, ...]] = []
    for invoice_id, invoice in enumerate(invoices, start=first):
        ids[(invoice.payer.kind, invoice.payer.id)] = invoice_id
        add_line_rows(line_rows, invoice_id, invoice, day_value)
    insert_rows(
        db, InvoiceRow, [invoice_row(invoice, first + offset) for offset, invoice in enumerate(invoices)]
    )
    insert_tuples(db, InvoiceLineRow, INVOICE_LINE_COLUMNS, line_rows)
    return ids


def invoice_row(invoice: Invoice, invoice_id: int) -> dict[str, Any]:
    """``invoice``'s row in ``invoices`` (for :func:`insert_rows`)."""
    seller, payer = invoice.seller, invoice.payer
    return {
        "id": invoice_id,
        "number": invoice.number,
        "kind": str(invoice.kind),
        "issued_on": invoice.issued_on,
        "due_on": invoice.due_on,
        "period": str(invoice.period),
        "credited_invoice": invoice.credited_invoice,
        "seller_name": seller.name,
        "seller_address": "\n".join(seller.address),
        "seller_siret": seller.siret,
        "seller_vat_number": seller.vat_number,
        "seller_vat_exempt": seller.vat_exempt,
        "seller_payment_terms": seller.payment_terms,
        "payer_kind": str(payer.kind),
        "payer_id": payer.id,
        "payer_name": payer.name,
        "payer_address": "\n".join(payer.address),
        "payer_reference": payer.reference,
        "payer_email": payer.email,
        "total_excl_vat_cents": invoice.total_excl_vat_cents,
        "vat_cents": invoice.vat_cents,
        "total_cents": invoice.total_cents,
        "previous_hash": invoice.previous_hash,
        "hash": invoice.hash,
    }


def add_line_rows(
    rows: list[tuple[Any, ...]], invoice_id: int, invoice: Invoice, day_value: Callable[[date], Any]
) -> None:
    """Add ``invoice``'s lines to ``rows``, as :data:`INVOICE_LINE_COLUMNS` for :func:`insert_tuples`."""
    text = _TEXT
    for line in invoice.lines:
        price, day, adjustment = line.unit_price, line.day, line.adjustment_for
        rows.append(
            (
                invoice_id, line.position, text[line.kind], line.member_id, line.member_name, line.machine,
                line.machine_name, day_value(day) if day else None, line.item, line.quantity, text[line.unit],
                price.cents if price else None, price.per if price else None, line.amount_cents, line.vat_rate_bp,
                line.vat_cents, line.price_version, str(adjustment) if adjustment else None,
            )
        )  # fmt: skip


INVOICE_LINE_COLUMNS = (
    "invoice_id", "position", "kind", "member_id", "member_name", "machine", "machine_name", "day", "item",
    "quantity", "unit", "unit_price_cents", "unit_price_per", "amount_cents", "vat_rate_bp", "vat_cents",
    "price_version", "adjustment_for",
)  # fmt: skip
POSTING_COLUMNS = (
    "entry_id", "account", "account_name", "auxiliary", "auxiliary_name", "debit_cents", "credit_cents",
)  # fmt: skip

_TEXT: dict[str, str] = {member: member.value for enum in (LineKind, Unit) for member in enum}
"""Kinds and units as plain text: a driver may write an enum by its name, not its value."""


def insert_rows(db: Session, model: type[Base], rows: Sequence[dict[str, Any]], chunk: int = 20_000) -> None:
    """Core executemany in chunks: the ORM's unit of work is too slow for a month of lines."""
    target = table(model)
    for start in range(0, len(rows), chunk):
        db.execute(sa.insert(target), rows[start : start + chunk])


def insert_tuples(
    db: Session,
    model: type[Base],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    chunk: int = 50_000,
) -> None:
    """Insert ``rows``, tuples of ``columns``, through the database driver itself: its
    executemany, or PostgreSQL's COPY (five times faster than psycopg's executemany).

    For the month close's millions of rows: Core's :func:`insert_rows` prepares every
    row's parameters in Python, three times what the driver then takes to write them.
    So the values go to the driver as they are, and must be ones it takes: ints, strs,
    bools, None, and dates as :func:`driver_date` gives them. Defaults are not applied.
    """
    if not rows:
        return
    connection = db.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    target = table(model)
    names = ", ".join(quote(target.c[column].name) for column in columns)  # the table's own columns only
    driver = connection.connection.driver_connection
    if dialect.driver == "psycopg" and driver is not None:
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {quote(target.name)} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    markers = ", ".join([marker] * len(columns))
    statement = f"INSERT INTO {quote(target.name)} ({names}) VALUES ({markers})"  # noqa: S608 - quoted names
    for start in range(0, len(rows), chunk):
        connection.exec_driver_sql(statement, rows[start : start + chunk])


def driver_date(db: Session) -> Callable[[date], Any]:
    """A date as :func:`insert_tuples` hands it to the driver.

    SQLite has no date type: SQLAlchemy stores a date as its ISO text, so the same text
    is written here (not left to the ``sqlite3`` module's deprecated date adapter).
    """
    if db.get_bind().dialect.name == "sqlite":
        return functools.lru_cache(maxsize=4096)(date.isoformat)
    return _as_it_is


def _as_it_is(day: date) -> date:
    return day


# --- ledger ----------------------------------------------------------------------------------


def append_entries(db: Session, entries: Sequence[JournalEntry]) -> list[tuple[int, JournalEntry]]:
    """Number ``entries`` after the last of each journal and add them; (row id, entry) each."""
    numbered = number_entries(entries, last_entry_numbers(db))
    first = next_id(db, JournalEntryRow)
    entry_rows, posting_rows = journal_rows(numbered, first)
    insert_rows(db, JournalEntryRow, entry_rows)
    insert_tuples(db, PostingRow, POSTING_COLUMNS, posting_rows)
    return list(enumerate(numbered, start=first))


def last_entry_numbers(db: Session) -> dict[str, int]:
    """The number of the last entry of each journal."""
    rows = db.execute(
        sa.select(JournalEntryRow.journal, sa.func.max(JournalEntryRow.number)).group_by(
            JournalEntryRow.journal
        )
    )
    return {code: int(number) for code, number in rows}


def journal_rows(
    numbered: Sequence[JournalEntry], first_id: int
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Numbered entries as rows, the first with id ``first_id``: entries (for :func:`insert_rows`)
    and postings (:data:`POSTING_COLUMNS`, for :func:`insert_tuples`)."""
    entry_rows: list[dict[str, Any]] = []
    posting_rows: list[tuple[Any, ...]] = []
    for entry_id, entry in enumerate(numbered, start=first_id):
        entry_rows.append(
            {
                "id": entry_id,
                "journal": entry.journal.code,
                "number": entry.number,
                "on": entry.on,
                "reference": entry.reference,
                "reference_date": entry.reference_date,
                "label": entry.label[:200],
                "reverses": entry.reverses,
            }
        )
        posting_rows.extend(
            (
                entry_id,
                posting.account.number,
                posting.account.name,
                posting.account.auxiliary,
                posting.account.auxiliary_name,
                posting.debit_cents,
                posting.credit_cents,
            )
            for posting in entry.postings
        )
    return entry_rows, posting_rows


def load_entries(db: Session, where: Any = None) -> list[JournalEntry]:
    query = sa.select(JournalEntryRow).order_by(JournalEntryRow.journal, JournalEntryRow.number)
    if where is not None:
        query = query.where(where)
    rows = list(db.scalars(query))
    postings: dict[int, list[Posting]] = defaultdict(list)
    posting_table = table(PostingRow)
    ids = [row.id for row in rows]
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        query_postings = (
            sa.select(posting_table).where(posting_table.c.entry_id.in_(chunk)).order_by(posting_table.c.id)
        )
        for p in db.execute(query_postings):
            account = Account(p.account, p.account_name, p.auxiliary, p.auxiliary_name)
            postings[p.entry_id].append(Posting(account, p.debit_cents, p.credit_cents))
    return [
        JournalEntry(
            journal=JOURNALS.get(row.journal, Journal(row.journal, row.journal)),
            on=row.on,
            reference=row.reference,
            reference_date=row.reference_date,
            label=row.label,
            postings=tuple(postings[row.id]),
            number=row.number,
            reverses=row.reverses,
        )
        for row in rows
    ]


def balance_of(db: Session, auxiliary: str, receivable: str = "411000") -> int:
    """What the payer owes (positive) or holds in credit (negative): one range on the postings index."""
    total = db.execute(
        sa.select(sa.func.coalesce(sa.func.sum(PostingRow.debit_cents - PostingRow.credit_cents), 0)).where(
            PostingRow.account == receivable, PostingRow.auxiliary == auxiliary
        )
    ).scalar_one()
    return int(total)


def balances(db: Session, receivable: str = "411000") -> dict[str, int]:
    rows = db.execute(
        sa.select(PostingRow.auxiliary, sa.func.sum(PostingRow.debit_cents - PostingRow.credit_cents))
        .where(PostingRow.account == receivable)
        .group_by(PostingRow.auxiliary)
        .order_by(PostingRow.auxiliary)
    )
    return {aux: int(total) for aux, total in rows}

"""The month close, as a pure function: rated lines per payer in, numbered chained invoices out.

- Periods are closed in order, each once: closing a period twice, or one before the
  last closed, is refused (:class:`~server.billing.errors.PeriodClosed`), as is closing
  a month that is not over on the day of issue.
- A closed period never changes. A session (or sale) of a closed period that arrives
  late is billed in the first open period, as an adjustment line naming its own period
  (:func:`billing_period_of` says where; :func:`~server.billing.rating.rate_usage`
  marks the lines).
- Payers are invoiced in a fixed order (members by id, then organisations by id), so
  closing the same data again gives the very same invoices, numbers and hashes.
- A payer with no line gets no invoice; one whose lines total nothing (all in a plan)
  gets one, as a statement of use.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from server.billing.errors import InvalidPeriod, PeriodClosed
from server.billing.invoices import (
    GENESIS_HASH,
    Invoice,
    Payer,
    PayerKind,
    Seller,
    build_invoice,
    next_number,
)
from server.billing.ledger import DEFAULT_CHART, Chart, JournalEntry, invoice_entry
from server.billing.lines import ChargeLine
from server.billing.periods import Period


@dataclass(frozen=True)
class PayerUsage:
    """Everything to invoice one payer for a period: rated usage, plan fees, consumables."""

    payer: Payer
    lines: tuple[ChargeLine, ...]


@dataclass(frozen=True)
class ClosedPeriod:
    period: Period
    invoices: tuple[Invoice, ...]
    entries: tuple[JournalEntry, ...]
    """The sales-journal entries of the invoices, unnumbered: the ledger numbers them."""
    last_number: str | None
    last_hash: str


def last_closed(closed: Collection[Period]) -> Period | None:
    return max(closed, default=None)


def billing_period_of(day: date, closed: Collection[Period]) -> Period:
    """The period a session of ``day`` is billed in: its own, or the first open one after the last closed."""
    own = Period.of(day)
    last = last_closed(closed)
    if last is None or own > last:
        return own
    return last.next()


def check_can_close(period: Period, closed: Collection[Period], issued_on: date) -> None:
    if period in closed:
        raise PeriodClosed(f"{period} is closed already: a closed period never changes")
    last = last_closed(closed)
    if last is not None and period < last:
        raise PeriodClosed(
            f"{period} comes before {last}, which is closed: its late sessions go to {last.next()}"
        )
    if last is not None and period != last.next():
        raise InvalidPeriod(f"close {last.next()} first: periods are closed in order")
    if issued_on <= period.last_day:
        raise InvalidPeriod(
            f"{period} is not over on {issued_on.isoformat()}: close it from {period.next().first_day}"
        )


def close_period(
    period: Period,
    usage: Iterable[PayerUsage],
    *,
    closed: Collection[Period],
    issued_on: date,
    seller: Seller,
    due_days: int = 15,
    last_number: str | None = None,
    last_hash: str = GENESIS_HASH,
    chart: Chart = DEFAULT_CHART,
) -> ClosedPeriod:
    """Invoice every payer with lines for ``period``, continuing the numbers and the hash chain.

    ``last_number`` and ``last_hash`` are those of the last invoice ever issued (None and
    :data:`~server.billing.invoices.GENESIS_HASH` before the first).
    """
    check_can_close(period, closed, issued_on)
    if due_days < 0:
        raise InvalidPeriod("an invoice is due on or after the day it is issued")
    payers = sorted(usage, key=invoicing_order)
    if len({(u.payer.kind, u.payer.id) for u in payers}) != len(payers):
        raise InvalidPeriod("each payer comes once to a close: merge their lines first")
    invoices: list[Invoice] = []
    entries: list[JournalEntry] = []
    in_order = (PayerUsage(u.payer, tuple(sorted(u.lines, key=ChargeLine.sort_key))) for u in payers)
    for issued in issue_invoices(
        period, in_order, issued_on=issued_on, seller=seller, due_days=due_days, last_number=last_number,
        last_hash=last_hash, chart=chart,
    ):  # fmt: skip
        if issued is not None:
            invoice, entry = issued
            invoices.append(invoice)
            if entry is not None:
                entries.append(entry)
            last_number, last_hash = invoice.number, invoice.hash
    return ClosedPeriod(period, tuple(invoices), tuple(entries), last_number, last_hash)


def invoicing_order(usage: PayerUsage) -> tuple[bool, int]:
    """Members first, by id, then organisations, by id."""
    return usage.payer.kind is not PayerKind.MEMBER, usage.payer.id


def issue_invoices(
    period: Period,
    usage: Iterable[PayerUsage],
    *,
    issued_on: date,
    seller: Seller,
    due_days: int,
    last_number: str | None,
    last_hash: str,
    chart: Chart = DEFAULT_CHART,
) -> Iterator[tuple[Invoice, JournalEntry | None] | None]:
    """:func:`close_period`'s invoices one payer at a time, as ``usage`` comes: for each payer
    its invoice and sales entry (None for a payer with no line to invoice).

    Nothing is checked or sorted here: ``usage`` comes in :func:`invoicing_order`, each
    payer's lines in :meth:`~server.billing.lines.ChargeLine.sort_key` order, for a
    period :func:`check_can_close` allows (as :func:`close_period` makes sure). The
    month close streams a million sessions' invoices through it.
    """
    due_on = issued_on + timedelta(days=due_days)
    for payer_usage in usage:
        if not payer_usage.lines:
            yield None
            continue
        invoice = build_invoice(
            number=next_number(last_number, issued_on.year),
            issued_on=issued_on,
            due_on=due_on,
            period=period,
            seller=seller,
            payer=payer_usage.payer,
            lines=payer_usage.lines,
            previous_hash=last_hash,
        )
        last_number, last_hash = invoice.number, invoice.hash
        yield invoice, invoice_entry(invoice, chart)

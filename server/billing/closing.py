"""The month close's pure half, in batches: the sessions to bill in, invoices out.

:func:`server.billing.monthly.close_month` reads what a close needs into a
:class:`CloseInput` (nothing is read after this); :func:`produce` rates each payer
(:mod:`~server.billing.rating`), issues its invoice, numbered and chained
(:mod:`~server.billing.close`), and makes the rows of how each session was rated, a few
hundred payers at a time; the close writes each :class:`Batch` as it comes.

A big month is produced in a second process while the first one writes (:func:`batches`):
rating and invoicing a million sessions, and writing them to SQLite, each take a core.
The second process is forked once everything is read, so it is handed nothing and never
touches the database; it only sends the batches back, in order.
"""

from __future__ import annotations

import gc
import multiprocessing
import threading
import traceback
from bisect import insort
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from itertools import repeat
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from server.billing.close import PayerUsage, issue_invoices
from server.billing.errors import BillingError
from server.billing.invoices import Invoice, InvoiceLine, Payer, PayerKind, Seller
from server.billing.ledger import JournalEntry
from server.billing.lines import ChargeLine, MachineRef, MemberRef
from server.billing.periods import Period
from server.billing.prices import Plan
from server.billing.rating import (
    ConsumableSale,
    DayKey,
    MeteredSession,
    PlanKey,
    RatedSession,
    RatingCache,
    rate_usage,
)

PayerKey = tuple[PayerKind, int]
StoredSession = tuple[int, str, int, int, Any, int, int, bool]
"""A session to bill as read: row id, session id, member id, machine id, ``started_at`` as
the driver gives it, running ms, idle ms, and whether it is late (of a closed month)."""

USAGE_CHARGE_COLUMNS = (
    "usage_session_id", "invoice_id", "period", "day", "member_id", "machine", "price_version", "free_try",
    "running_minutes", "included_minutes", "idle_minutes", "fee_cents", "metered_cents", "minimum_topup_cents",
    "adjustment_for",
)  # fmt: skip
"""The columns of a :attr:`Batch.charge_rows` row."""

BATCH_LINES = 20_000
"""About how many invoice lines a batch holds (the first one a tenth of that, to start the writing early)."""


@dataclass(frozen=True)
class CloseInput:
    """Everything a close computes from, read before anything is computed."""

    period: Period
    issued_on: date
    seller: Seller
    due_days: int
    last_number: str | None
    last_hash: str
    sessions: Sequence[StoredSession]
    payer_of: Mapping[int, PayerKey]
    """Who pays for each member's usage."""
    members: Mapping[int, MemberRef]
    machines: Mapping[int, MachineRef]
    payers: Mapping[PayerKey, Payer]
    prices: Mapping[PayerKey, RatingCache]
    """The book of each payer with sessions or sales (one cache per price list)."""
    sales: Mapping[PayerKey, Sequence[ConsumableSale]]
    sale_ids: Mapping[PayerKey, Sequence[int]]
    plan_fees: Mapping[PayerKey, ChargeLine]
    plans: Mapping[tuple[int, Period], Plan]
    plan_minutes_used: Mapping[PlanKey, int]
    charged_before: Mapping[DayKey, int]
    first_invoice_id: int
    day_value: Callable[[date], Any]
    """A date as the database driver takes it (:func:`server.billing.store.driver_date`)."""


@dataclass
class Batch:
    """Some payers' invoices and sales entries, how their sessions were rated, their sales."""

    first_invoice_id: int
    """The id of the first invoice: they follow on."""
    invoices: list[Invoice] = field(default_factory=list)
    entries: list[JournalEntry] = field(default_factory=list)
    """Unnumbered, as :class:`~server.billing.close.ClosedPeriod` holds them."""
    sessions: int = 0
    charge_rows: list[tuple[Any, ...]] = field(default_factory=list)
    """A ``usage_charges`` row per session, :data:`USAGE_CHARGE_COLUMNS`."""
    sale_rows: list[dict[str, Any]] = field(default_factory=list)
    """A ``sale_charges`` row per sale."""


def utc(stored: datetime | str) -> datetime:
    """A ``started_at`` as the driver gives it (SQLite: naive UTC text) as an aware UTC datetime."""
    if isinstance(stored, str):
        try:  # five times faster than parsing, then replacing the time zone
            return datetime.fromisoformat(stored + "+00:00")
        except ValueError:
            stored = datetime.fromisoformat(stored)
    return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


def _sessions_by_payer(close: CloseInput) -> dict[PayerKey, list[StoredSession]]:
    """The sessions as read, by who pays for them."""
    by_payer: dict[PayerKey, list[StoredSession]] = defaultdict(list)
    payer_of = close.payer_of
    for session in close.sessions:
        by_payer[payer_of[session[2]]].append(session)
    return by_payer


def _metered(close: CloseInput, stored: Sequence[StoredSession]) -> list[MeteredSession]:
    """One payer's sessions as rating takes them, made payer by payer so that the first batch
    comes early."""
    members, machines = close.members, close.machines
    new = tuple.__new__  # as MeteredSession._make, without a call: they are checked as they are rated
    if stored and isinstance(stored[0][4], str):
        parse = datetime.fromisoformat
        try:  # SQLite's naive UTC text, as utc() reads it, without a call per session
            return [
                new(MeteredSession, (session_id, members[member], machines[machine], parse(started + "+00:00"),
                                     running, idle))
                for _, session_id, member, machine, started, running, idle, _ in stored
            ]  # fmt: skip
        except (TypeError, ValueError):
            pass  # not all of it: each as utc() reads it
    return [
        new(MeteredSession, (session_id, members[member], machines[machine], utc(started), running, idle))
        for _, session_id, member, machine, started, running, idle, _ in stored
    ]


def produce(close: CloseInput) -> Iterator[Batch]:
    """Rate and invoice every payer, in :func:`~server.billing.close.invoicing_order`, in batches."""
    sessions = _sessions_by_payer(close)
    keys = sorted(
        set(sessions) | set(close.sales) | set(close.plan_fees),
        key=lambda key: (key[0] is not PayerKind.MEMBER, key[1]),
    )
    # The payer rated, not yet invoiced: its rated sessions, and their rows' ids by session id.
    ratings: deque[tuple[Sequence[RatedSession], dict[str, int]]] = deque()

    def usage() -> Iterator[PayerUsage]:
        for key in keys:
            lines: list[ChargeLine] = []
            if key in sessions or key in close.sales:
                stored = sessions.get(key, ())
                rating = rate_usage(
                    _metered(close, stored),
                    close.prices[key],
                    plans=close.plans,
                    plan_minutes_used=close.plan_minutes_used,
                    charged_before=close.charged_before,
                    sales=close.sales.get(key, ()),
                    billing_period=close.period,
                )
                ratings.append((rating.sessions, {session[1]: session[0] for session in stored}))
                lines.extend(rating.lines)
            else:
                ratings.append(((), {}))
            if key in close.plan_fees:
                insort(lines, close.plan_fees[key], key=ChargeLine.sort_key)
            yield PayerUsage(close.payers[key], tuple(lines))

    issued = issue_invoices(
        close.period, usage(), issued_on=close.issued_on, seller=close.seller, due_days=close.due_days,
        last_number=close.last_number, last_hash=close.last_hash,
    )  # fmt: skip
    billed_in, day_value = str(close.period), close.day_value
    invoice_id = close.first_invoice_id
    batch, batch_lines, enough = Batch(invoice_id), 0, BATCH_LINES // 10
    for key, invoice_and_entry in zip(keys, issued, strict=True):
        rated, row_ids = ratings.popleft()
        billed_on = None
        if invoice_and_entry is not None:
            invoice, entry = invoice_and_entry
            billed_on = invoice_id
            batch.invoices.append(invoice)
            batch_lines += len(invoice.lines)
            if entry is not None:
                batch.entries.append(entry)
            invoice_id += 1
        batch.sessions += len(rated)
        batch.charge_rows.extend(
            (
                row_ids[session_id], billed_on, billed_in, day_value(day), member_id, machine, price_version,
                *charge, str(adjustment) if adjustment else None,
            )
            for session_id, member_id, machine, day, price_version, charge, adjustment in rated
        )  # fmt: skip
        batch.sale_rows.extend(
            {"consumable_sale_id": sale_id, "invoice_id": billed_on, "period": billed_in}
            for sale_id in close.sale_ids.get(key, ())
        )
        if batch_lines >= enough:
            yield batch
            batch, batch_lines, enough = Batch(invoice_id), 0, BATCH_LINES
    yield batch


PARALLEL_FROM = 50_000
"""From how many sessions a close is produced in a second process (when it can be)."""


def batches(close: CloseInput, *, parallel: bool | None = None) -> Iterator[Batch]:
    """:func:`produce`'s batches, in order: here (all made before the first is handed over, so
    that a refusal comes before anything is written), or made in a second process.

    ``parallel`` None decides by size: from :data:`PARALLEL_FROM` sessions, if this process
    can fork (a POSIX system, no other thread running). In a second process the batches
    come as they are made: the caller writes one while the next is made, and must undo its
    writes if a later one fails (a refusal only shows as its batch is made): the close
    writes them in a savepoint.
    """
    if parallel is None:
        parallel = len(close.sessions) >= PARALLEL_FROM and can_fork()
    if not parallel:
        yield from list(produce(close))
        return
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    worker = context.Process(target=_work, args=(close, sending), name="month-close", daemon=True)
    worker.start()
    sending.close()
    try:
        while (message := _received(receiving, worker)) is not None:
            if isinstance(message, _Failure):
                raise message.error
            yield _unpacked(*message)
    finally:
        receiving.close()
        if worker.is_alive():
            worker.terminate()
        worker.join()


def can_fork() -> bool:
    """Whether this process can fork a second one safely: on POSIX, with no other thread running."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


@contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """Python's cycle collector paused, then set back as it was.

    A close makes millions of tuples, none of them in a reference cycle, and each full
    collection walks all of them again: a quarter of a million-session close went to
    that. Memory is still freed as usual (reference counting); only cycles wait.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _received(receiving: Connection, worker: BaseProcess) -> Any:
    try:
        return receiving.recv()
    except EOFError:
        worker.join()
        raise BillingError(
            f"the month close's second process stopped (exit code {worker.exitcode})"
        ) from None


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _work(close: CloseInput, sending: Connection) -> None:
    """In the second process: every batch, then None (or what went wrong)."""
    try:
        for batch in produce(close):
            sending.send(_packed(batch))
        sending.send(None)
    except BaseException as error:  # whatever it is, the first process raises it
        error.add_note("in the month close's second process:\n" + traceback.format_exc())
        try:
            sending.send(_Failure(error))
        except Exception:  # an error that does not pickle
            sending.send(_Failure(BillingError(f"the month close failed: {error!r}")))
    finally:
        sending.close()


def _packed(batch: Batch) -> tuple[Batch, list[list[tuple[Any, ...]]]]:
    """The batch to send, its invoices' lines apart as plain tuples: named tuples pickle
    through ``copyreg``, several times slower to send and to receive."""
    lines = [list(map(tuple, invoice.lines)) for invoice in batch.invoices]
    batch.invoices = [replace(invoice, lines=()) for invoice in batch.invoices]
    return batch, lines


def _unpacked(batch: Batch, lines: list[list[tuple[Any, ...]]]) -> Batch:
    new = tuple.__new__  # as InvoiceLine._make does, without a Python call per line
    batch.invoices = [
        replace(invoice, lines=tuple(map(new, repeat(InvoiceLine), own)))
        for invoice, own in zip(batch.invoices, lines, strict=True)
    ]
    return batch

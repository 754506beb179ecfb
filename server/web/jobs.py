"""The month close as a job of its own, so that its page can show how far it is.

A close reads the month, rates and invoices it, then writes its rows in batches, in one
transaction (:func:`server.billing.books.close_month`). The job runs it on a thread of its
own, on a connection of its own, and counts the invoices written as they go to the database
(a cursor event on that connection only): invoices written over the payers with something to
invoice is the progress the page shows. (Usage charges would be finer, but on PostgreSQL they
go through COPY, which no event sees.) One close at a time per server process.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from server.billing.periods import Period
from server.db import table
from server.models import (
    ConsumableSaleRow,
    InvoiceRow,
    Member,
    MemberPlan,
    SaleCharge,
    UsageCharge,
    UsageSession,
)
from server.web.errors import REFUSALS, error_key

log = logging.getLogger(__name__)

_INVOICES = table(InvoiceRow).name


class Phase(StrEnum):
    READING = "reading"  # checks, then everything the close computes from
    WRITING = "writing"  # invoices, lines, charges, entries
    DONE = "done"
    FAILED = "failed"


@dataclass
class CloseJob:
    id: str
    period: str
    issued_on: date
    by: int
    expected_sessions: int
    expected_invoices: int
    started: float = field(default_factory=time.monotonic)
    phase: Phase = Phase.READING
    written: int = 0
    """Invoices written so far."""
    finished: float | None = None
    invoices: int = 0
    first_number: str | None = None
    last_number: str | None = None
    total_cents: int = 0
    sessions: int = 0
    late_sessions: int = 0
    error: str | None = None
    """A catalogue key (``error.*``) when it was refused."""

    @property
    def running(self) -> bool:
        return self.phase in (Phase.READING, Phase.WRITING)

    @property
    def percent(self) -> int | None:
        """How far, 0 to 100; None while it is not known (reading)."""
        if self.phase is Phase.DONE:
            return 100
        if self.phase is not Phase.WRITING or not self.expected_invoices:
            return None
        return min(99, self.written * 100 // self.expected_invoices)

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def _ended_before(end: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(UsageSession.ended_at.is_not(None), UsageSession.started_at < end)


def sessions_to_bill(db: Session, period: Period) -> int:
    """Ended sessions started before the end of ``period`` and not billed yet (what the close rates)."""
    _, end = period.bounds()
    return int(
        db.scalar(
            sa.select(sa.func.count())
            .select_from(UsageSession)
            .outerjoin(UsageCharge, UsageCharge.usage_session_id == UsageSession.id)
            .where(UsageCharge.id.is_(None), UsageSession.member_id.is_not(None), _ended_before(end))
        )
        or 0
    )


def payers_to_invoice(db: Session, period: Period) -> int:
    """About how many invoices the close of ``period`` issues: the payers (a member, or the
    organisation paying for them) with unbilled usage or sales, or a plan, in the month."""
    _, end = period.bounds()
    payer = sa.func.coalesce(-Member.organisation_id, Member.id)  # organisations kept apart by sign
    using = (
        sa.select(payer)
        .join(UsageSession, UsageSession.member_id == Member.id)
        .outerjoin(UsageCharge, UsageCharge.usage_session_id == UsageSession.id)
        .where(UsageCharge.id.is_(None), _ended_before(end))
    )
    buying = (
        sa.select(payer)
        .join(ConsumableSaleRow, ConsumableSaleRow.member_id == Member.id)
        .outerjoin(SaleCharge, SaleCharge.consumable_sale_id == ConsumableSaleRow.id)
        .where(SaleCharge.invoice_id.is_(None), ConsumableSaleRow.sold_at < end)
    )
    found = set(db.scalars(using.distinct())) | set(db.scalars(buying.distinct()))
    latest: dict[int, int | None] = {}
    for member_id, plan_id in db.execute(
        sa.select(MemberPlan.member_id, MemberPlan.plan_id)
        .where(MemberPlan.valid_from <= period.first_day)
        .order_by(MemberPlan.valid_from)
    ):
        latest[member_id] = plan_id
    on_plan = [member for member, plan in latest.items() if plan is not None]
    if on_plan:
        found |= set(db.scalars(sa.select(payer).where(Member.id.in_(on_plan))))
    return len(found)


class CloseJobs:
    """The closes started in this process, by id; at most one runs at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, CloseJob] = {}

    def get(self, job_id: str) -> CloseJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def running(self) -> CloseJob | None:
        with self._lock:
            return next((job for job in self._jobs.values() if job.running), None)

    def start(
        self,
        engine: Engine,
        period: Period,
        issued_on: date,
        *,
        by: int,
        now: datetime,
        expected: tuple[int, int],
    ) -> CloseJob:
        """Start closing ``period`` (``expected``: sessions to rate, invoices to write);
        a :class:`RuntimeError` if a close runs already."""
        with self._lock:
            if any(job.running for job in self._jobs.values()):
                raise RuntimeError("a close is running")
            job = CloseJob(secrets.token_urlsafe(9), str(period), issued_on, by, *expected)
            self._jobs[job.id] = job
        thread = threading.Thread(
            target=self._run, args=(job, engine, period, now), name=f"close-{period}", daemon=True
        )
        thread.start()
        return job

    def _run(self, job: CloseJob, engine: Engine, period: Period, now: datetime) -> None:
        from server.billing.books import close_month  # noqa: PLC0415 - the heavy part, when used

        def count(*args: Any) -> None:
            # after_cursor_execute(conn, cursor, statement, parameters, context, executemany)
            cursor, statement, parameters, many = args[1], args[2], args[3], args[5]
            target = [word.strip('"`') for word in statement.split("(", 1)[0].split()]
            if target[:2] == ["INSERT", "INTO"] and _INVOICES in target:
                job.phase = Phase.WRITING
                rows = cursor.rowcount if cursor.rowcount and cursor.rowcount > 0 else None
                job.written += rows or (len(parameters) if many else 1)

        try:
            with engine.connect() as connection:
                sa.event.listen(connection, "after_cursor_execute", count)
                with Session(bind=connection, expire_on_commit=False) as db:
                    result = close_month(db, period, job.issued_on, by=job.by, now=now)
                    db.commit()
            invoices = result.closed.invoices
            job.invoices = len(invoices)
            job.first_number = invoices[0].number if invoices else None
            job.last_number = invoices[-1].number if invoices else None
            job.total_cents = sum(invoice.total_cents for invoice in invoices)
            job.sessions, job.late_sessions = result.sessions, result.late_sessions
            job.phase = Phase.DONE
        except REFUSALS as error:
            log.info("close of %s refused: %s", period, error)
            job.error, job.phase = error_key(error), Phase.FAILED
        except Exception:
            log.exception("close of %s failed", period)
            job.error, job.phase = "error.server", Phase.FAILED
        finally:
            job.finished = time.monotonic()

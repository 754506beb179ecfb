"""The month close, with a progress indicator: as ``atelier billing close``, started from a page.

The close runs as a job (:mod:`server.web.jobs`); its page shows how far it is, updated
by ``static/app.js`` from the progress fragment (and by a refresh of the whole page
without scripts), then what it issued.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from server.api.deps import ClockDep, SessionDep
from server.billing.close import check_can_close
from server.billing.periods import Period, workshop_day
from server.models import BillingPeriod
from server.web import forms
from server.web.errors import REFUSALS, error_key
from server.web.jobs import CloseJob, payers_to_invoice, sessions_to_bill
from server.web.render import fragment, redirect, render
from server.web.session import BillingUser, TreasurerUser
from server.web.state import web_state

router = APIRouter(prefix="/billing/close", include_in_schema=False)


def _closed(db: SessionDep) -> list[BillingPeriod]:
    return list(db.scalars(sa.select(BillingPeriod).order_by(BillingPeriod.period.desc())))


@router.get("", response_class=HTMLResponse)
def close_page(request: Request, caller: BillingUser, db: SessionDep, clock: ClockDep) -> HTMLResponse:
    today = workshop_day(clock())
    closed = _closed(db)
    following = Period.parse(closed[0].period).next() if closed else Period.of(today).previous()
    context = {
        "closed": closed,
        "proposed": str(following),
        "proposed_open": following.next().first_day <= today,
        "today": today,
        "running": web_state(request).closes.running(),
    }
    return render(request, "billing/close.html", context, caller=caller, db=db, clock=clock)


@router.post("")
def start_close(
    *,
    request: Request,
    caller: TreasurerUser,
    db: SessionDep,
    clock: ClockDep,
    period: Annotated[str, Form()] = "",
    issued_on: Annotated[str, Form()] = "",
) -> Response:
    now = clock()
    jobs = web_state(request).closes
    try:
        month = Period.parse(period)
        issued = forms.optional_day(issued_on) or workshop_day(now)
        check_can_close(month, [Period.parse(row.period) for row in _closed(db)], issued)
        expected = (sessions_to_bill(db, month), payers_to_invoice(db, month))
    except forms.BadField as error:
        return redirect("/billing/close", error=error.key)
    except REFUSALS as error:
        return redirect("/billing/close", error=error_key(error))
    db.close()  # the job writes on a connection of its own; SQLite would wait for this one
    try:
        job = jobs.start(request.app.state.engine, month, issued, by=caller.id, now=now, expected=expected)
    except RuntimeError:
        return redirect("/billing/close", error="error.close_running")
    return redirect(f"/billing/close/{job.id}")


def _job(request: Request, job_id: str) -> CloseJob | None:
    return web_state(request).closes.get(job_id)


@router.get("/{job_id}", response_class=HTMLResponse)
def close_job_page(
    request: Request, job_id: str, caller: BillingUser, db: SessionDep, clock: ClockDep
) -> HTMLResponse:
    job = _job(request, job_id)
    if job is None:
        return render(request, "not_found.html", {}, caller=caller, db=db, clock=clock, status_code=404)
    return render(request, "billing/close_job.html", {"job": job}, caller=caller, db=db, clock=clock)


@router.get("/{job_id}/progress", response_class=HTMLResponse)
def close_job_progress(request: Request, job_id: str, caller: BillingUser) -> HTMLResponse:
    job = _job(request, job_id)
    if job is None:
        return HTMLResponse("", status_code=404)
    html = fragment(request, "billing/_close_progress.html", {"job": job})
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})

"""Exports for the bank and the accountant: SEPA direct debits, the FEC and CSV files.

As ``atelier export sepa|fec|csv`` does: a SEPA file is recorded when it is made (a later
one for a mandate is then RCUR), so making one is the treasurer's; the FEC and the CSV
files only read, and the treasurer and managers download them.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from server.api.deps import ClockDep, SessionDep
from server.billing import books
from server.billing.csv_export import invoice_lines_csv, rated_sessions_csv
from server.billing.fec import fec_bytes, fec_filename
from server.billing.monthly import rated_sessions
from server.billing.periods import Period, workshop_day
from server.billing.store import current_settings, load_entries, load_invoices
from server.models import BillingPeriod, InvoiceRow, JournalEntryRow, SepaFile
from server.web import forms
from server.web.errors import REFUSALS, error_key
from server.web.render import redirect, render
from server.web.session import BillingUser, TreasurerUser

router = APIRouter(prefix="/billing/exports", include_in_schema=False)

PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
PeriodQuery = Annotated[str, Query(pattern=PERIOD)]


@router.get("", response_class=HTMLResponse)
def exports_page(
    request: Request,
    caller: BillingUser,
    db: SessionDep,
    clock: ClockDep,
    period: Annotated[str | None, Query(pattern=PERIOD)] = None,
) -> HTMLResponse:
    today = workshop_day(clock())
    closed = list(db.scalars(sa.select(BillingPeriod.period).order_by(BillingPeriod.period.desc())))
    context = {
        "periods": closed,
        "period": period or (closed[0] if closed else str(Period.of(today).previous())),
        "files": list(db.scalars(sa.select(SepaFile).order_by(SepaFile.id.desc()).limit(24))),
        "today": today,
        "this_month": str(Period.of(today)),
    }
    return render(request, "billing/exports.html", context, caller=caller, db=db, clock=clock)


@router.post("/sepa")
def make_sepa(
    *,
    caller: TreasurerUser,
    db: SessionDep,
    clock: ClockDep,
    period: Annotated[str, Form()] = "",
    collection_date: Annotated[str, Form()] = "",
) -> Response:
    now = clock()

    def act() -> dict[str, object]:
        try:
            month = Period.parse(period)
        except ValueError:
            raise forms.BadField("error.invalid_month") from None
        message_id, _, count = books.export_sepa(
            db, month, forms.optional_day(collection_date) or workshop_day(now), now, by=caller.id
        )
        return {"file": message_id, "count": count}

    return forms.attempt(db, act, back="/billing/exports", ok="flash.sepa_made")


@router.get("/sepa/{message_id}.xml")
def sepa_file(
    message_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,35}$")], caller: BillingUser, db: SessionDep
) -> Response:
    file = db.scalars(sa.select(SepaFile).where(SepaFile.message_id == message_id)).first()
    if file is None:
        return Response(status_code=404)
    return Response(
        file.document,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{message_id}.xml"'},
    )


@router.get("/fec")
def fec_file(period: PeriodQuery, caller: BillingUser, db: SessionDep) -> Response:
    month = Period.parse(period)
    try:
        entries = load_entries(
            db, sa.and_(JournalEntryRow.on >= month.first_day, JournalEntryRow.on <= month.last_day)
        )
        name = fec_filename(current_settings(db).siret, month.last_day)
        document = fec_bytes(entries)
    except REFUSALS as error:
        return redirect(f"/billing/exports?period={period}", error=error_key(error))
    return Response(
        document,
        media_type="text/plain; charset=iso-8859-15",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/csv")
def csv_file(
    period: PeriodQuery,
    caller: BillingUser,
    db: SessionDep,
    what: Annotated[str, Query(pattern="^(lines|sessions)$")] = "lines",
    lang: Annotated[str, Query(pattern="^(fr|en)$")] = "fr",
) -> Response:
    month = Period.parse(period)
    if what == "sessions":
        text = rated_sessions_csv(rated_sessions(db, month), lang)
    else:
        invoices = [invoice for _, invoice in load_invoices(db, InvoiceRow.period == str(month))]
        text = invoice_lines_csv(invoices, lang)
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="atelier-{what}-{period}-{lang}.csv"'},
    )

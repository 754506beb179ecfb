"""The activity report for funders, with charts: usage per machine per week, hours per sector.

The figures are :func:`server.reports.activity.activity_report`'s (as ``atelier report
activity``), and its CSV and printable HTML are offered as they are; the weekly chart reads
the usage sessions of the weeks it shows, in the workshop's time zone.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from server.api.deps import ClockDep, SessionDep
from server.billing.errors import BillingError
from server.billing.periods import WORKSHOP_TZ, workshop_day
from server.billing.store import current_settings
from server.models import Machine, UsageSession
from server.reports.activity import activity_csv, activity_html, activity_report
from server.web.charts import Series, horizontal_bars, stacked_bars
from server.web.i18n import Translator, language_of
from server.web.render import render
from server.web.session import BillingUser

router = APIRouter(prefix="/billing/report", include_in_schema=False)

MS_PER_HOUR = 3_600_000
MACHINES_SHOWN = 5
"""Machines with a series of their own in the weekly chart; the others are summed."""

Year = Annotated[int | None, Query(ge=2000, le=9998)]
Weeks = Annotated[int, Query(ge=4, le=53)]


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weekly_usage(db: Session, last_day: date, weeks: int) -> tuple[list[date], dict[str, list[float]]]:
    """Running hours per machine (by name) in each of the ``weeks`` weeks ending with ``last_day``'s."""
    mondays = [_monday(last_day) - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    start = datetime.combine(mondays[0], time.min, tzinfo=WORKSHOP_TZ)
    end = datetime.combine(mondays[-1] + timedelta(days=7), time.min, tzinfo=WORKSHOP_TZ)
    hours: dict[str, list[float]] = defaultdict(lambda: [0.0] * weeks)
    rows = db.execute(
        sa.select(Machine.name, UsageSession.started_at, UsageSession.running_ms)
        .join(Machine, Machine.id == UsageSession.machine_id)
        .where(UsageSession.started_at >= start, UsageSession.started_at < end)
    )
    for name, started, running in rows:
        index = (_monday(workshop_day(started)) - mondays[0]).days // 7
        if 0 <= index < weeks:
            hours[name][index] += running / MS_PER_HOUR
    return mondays, dict(hours)


def _weekly_chart(
    t: Translator, mondays: list[date], hours: dict[str, list[float]]
) -> tuple[object, list[Series]]:
    ranked = sorted(hours.items(), key=lambda item: -sum(item[1]))
    series = [Series(name, values) for name, values in ranked[:MACHINES_SHOWN]]
    if len(ranked) > MACHINES_SHOWN:
        rest = [sum(values[i] for _, values in ranked[MACHINES_SHOWN:]) for i in range(len(mondays))]
        series.append(Series(t("report.other_machines"), rest))
    labels = [t("report.week_short", week=monday.isocalendar().week) for monday in mondays]
    chart = stacked_bars(
        t, title=t("report.weekly_title", weeks=len(mondays)),
        description=t("report.weekly_desc", first=t.day(mondays[0]), last=t.day(mondays[-1] + timedelta(days=6))),
        categories=labels, series=series, unit=t("report.hours_unit"), ident="chart-weekly",
    )  # fmt: skip
    return chart, series


@router.get("", response_class=HTMLResponse)
def report_page(
    *,
    request: Request,
    caller: BillingUser,
    db: SessionDep,
    clock: ClockDep,
    year: Year = None,
    weeks: Weeks = 12,
) -> HTMLResponse:
    t = Translator(language_of(request))
    today = workshop_day(clock())
    chosen = year or today.year
    report = activity_report(db, chosen)
    last_day = today if chosen == today.year else date(chosen, 12, 31)
    mondays, hours = weekly_usage(db, last_day, weeks)
    weekly, series = _weekly_chart(t, mondays, hours)
    total = report.total
    sectors = sorted((total.sector_ms if total else {}).items(), key=lambda item: -item[1])
    sector_chart = horizontal_bars(
        t, title=t("report.sectors_title", year=chosen), description=t("report.sectors_desc", year=chosen),
        labels=[name for name, _ in sectors], values=[ms / MS_PER_HOUR for _, ms in sectors],
        unit=t("report.hours_unit"), ident="chart-sectors",
    )  # fmt: skip
    context = {
        "year": chosen,
        "weeks": weeks,
        "report": report,
        "weekly": weekly,
        "series": series,
        "mondays": mondays,
        "sectors": sectors,
        "sector_chart": sector_chart,
        "years": list(range(today.year, today.year - 6, -1)),
    }
    return render(request, "billing/report.html", context, caller=caller, db=db, clock=clock)


@router.get("/activity-{year}.csv")
def activity_csv_file(year: int, caller: BillingUser, db: SessionDep) -> Response:
    return Response(
        activity_csv(activity_report(db, year)).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="activite-{year}.csv"'},
    )


@router.get("/activity-{year}.html", response_class=HTMLResponse)
def activity_html_file(year: int, caller: BillingUser, db: SessionDep) -> HTMLResponse:
    try:
        association = current_settings(db).name
    except BillingError:
        association = ""
    return HTMLResponse(activity_html(activity_report(db, year), association))

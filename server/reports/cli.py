"""``atelier report activity``: the funders' activity report as CSV and a printable HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.cli import _database


def _activity(args: argparse.Namespace) -> int:
    import sqlalchemy as sa  # noqa: PLC0415

    from server.models import BillingSettings  # noqa: PLC0415
    from server.reports.activity import activity_csv, activity_html, activity_report  # noqa: PLC0415

    if not (args.out or args.html):
        print("atelier: say --out FILE.csv, --html FILE.html or both", file=sys.stderr)
        return 1
    if args.month is not None and not 1 <= args.month <= 12:
        print(f"atelier: --month {args.month} is not a month (1 to 12)", file=sys.stderr)
        return 1
    with _database() as db:
        report = activity_report(db, args.year, args.month)
        association = db.scalar(sa.select(BillingSettings.name).order_by(BillingSettings.id.desc()).limit(1))
    try:
        if args.out:
            Path(args.out).write_text(activity_csv(report), encoding="utf-8")
            print(f"wrote {args.out}")
        if args.html:
            Path(args.html).write_text(activity_html(report, association or ""), encoding="utf-8")
            print(f"wrote {args.html}")
    except OSError as error:
        print(f"atelier: {error}", file=sys.stderr)
        return 1
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = subparsers.add_parser("report", help="reports for funders")
    kinds = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    activity = kinds.add_parser(
        "activity", help="machine hours per machine and sector, members and organisations served"
    )
    activity.add_argument("--year", type=int, required=True)
    activity.add_argument("--month", type=int, help="one month (1-12) instead of the whole year")
    activity.add_argument("--out", help="the CSV file to write")
    activity.add_argument("--html", help="a printable HTML page to write")
    activity.set_defaults(func=_activity)

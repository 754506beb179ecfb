"""The funders' activity report: machine hours, members and organisations served, per month and year.

From the usage sessions and members in the SQL database. A session counts in the month it
started in (workshop time, Europe/Paris), with its running time; hours are running hours,
the time the machine was sensed working. *Unique members* are the members with at least
one session in the period (a year's figure is not the sum of its months); *new members*
are the members created in the period; *organisations served* are the organisations
paying for at least one member who used a machine in the period.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from html import escape

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing.periods import Period
from server.models import Machine, Member, UsageSession

_MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class Activity:
    """One period's figures; ``label`` is ``YYYY-MM`` or ``YYYY`` for the year."""

    label: str
    sessions: int
    machine_ms: dict[str, int] = field(default_factory=dict)  # machine slug -> running ms
    sector_ms: dict[str, int] = field(default_factory=dict)  # machine class -> running ms
    unique_members: int = 0
    new_members: int = 0
    organisations_served: int = 0

    @property
    def hours(self) -> float:
        return sum(self.machine_ms.values()) / _MS_PER_HOUR


@dataclass(frozen=True)
class ActivityReport:
    year: int
    machines: dict[str, tuple[str, str]]  # slug -> (name, machine class)
    months: list[Activity]
    total: Activity | None  # the year, when the report covers it


def _activity(db: Session, label: str, periods: list[Period]) -> Activity:
    since, until = periods[0].bounds()[0], periods[-1].bounds()[1]
    in_period = sa.and_(UsageSession.started_at >= since, UsageSession.started_at < until)
    machine_ms: dict[str, int] = {}
    sector_ms: dict[str, int] = defaultdict(int)
    sessions = 0
    for slug, machine_class, count, running in db.execute(
        sa.select(Machine.slug, Machine.machine_class, sa.func.count(), sa.func.sum(UsageSession.running_ms))
        .join(UsageSession, UsageSession.machine_id == Machine.id)
        .where(in_period)
        .group_by(Machine.slug, Machine.machine_class)
    ):
        # int(): PostgreSQL sums BIGINT as NUMERIC, which arrives as a Decimal.
        machine_ms[slug] = int(running or 0)
        sector_ms[machine_class] += int(running or 0)
        sessions += int(count)
    users = sa.select(UsageSession.member_id).where(in_period, UsageSession.member_id.is_not(None)).distinct()
    unique = db.scalar(sa.select(sa.func.count()).select_from(users.subquery())) or 0
    organisations = (
        db.scalar(
            sa.select(sa.func.count(sa.distinct(Member.organisation_id))).where(
                Member.id.in_(users), Member.organisation_id.is_not(None)
            )
        )
        or 0
    )
    new = (
        db.scalar(sa.select(sa.func.count()).where(Member.created_at >= since, Member.created_at < until))
        or 0
    )
    return Activity(label, sessions, machine_ms, dict(sector_ms), int(unique), int(new), int(organisations))


def activity_report(db: Session, year: int, month: int | None = None) -> ActivityReport:
    """The months of ``year`` (or the one ``month``), and the whole year unless a month is asked."""
    machines = {
        slug: (name, machine_class)
        for slug, name, machine_class in db.execute(
            sa.select(Machine.slug, Machine.name, Machine.machine_class).order_by(Machine.slug)
        )
    }
    periods = [Period(year, month)] if month else [Period(year, m) for m in range(1, 13)]
    months = [_activity(db, str(p), [p]) for p in periods]
    total = None if month else _activity(db, str(year), periods)
    return ActivityReport(year, machines, months, total)


def _hours(ms: int) -> str:
    return f"{ms / _MS_PER_HOUR:.2f}"


def _columns(report: ActivityReport) -> list[Activity]:
    return [*report.months, *([report.total] if report.total else [])]


def activity_csv(report: ActivityReport) -> str:
    """One row per figure, one column per period (the months, then the year): a spreadsheet's table."""
    columns = _columns(report)
    sectors = sorted({name for _, name in report.machines.values()})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["figure", "key", "name", *(a.label for a in columns)])
    writer.writerow(
        ["machine_hours", "total", "all machines", *(_hours(sum(a.machine_ms.values())) for a in columns)]
    )
    for sector in sectors:
        writer.writerow(
            ["sector_hours", sector, sector, *(_hours(a.sector_ms.get(sector, 0)) for a in columns)]
        )
    for slug, (name, _) in report.machines.items():
        writer.writerow(["machine_hours", slug, name, *(_hours(a.machine_ms.get(slug, 0)) for a in columns)])
    writer.writerow(["sessions", "total", "usage sessions", *(a.sessions for a in columns)])
    writer.writerow(
        ["unique_members", "total", "members who used a machine", *(a.unique_members for a in columns)]
    )
    writer.writerow(["new_members", "total", "members who joined", *(a.new_members for a in columns)])
    writer.writerow(
        ["organisations_served", "total", "organisations served", *(a.organisations_served for a in columns)]
    )
    return out.getvalue()


def activity_html(report: ActivityReport, association: str = "") -> str:
    """A printable page with the same figures as :func:`activity_csv`."""
    columns = _columns(report)
    sectors = sorted({name for _, name in report.machines.values()})
    what = columns[0].label if len(columns) == 1 else str(report.year)

    def row(label: str, cells: list[str], strong: bool = False) -> str:
        tag = "th" if strong else "td"
        return (
            f"<tr><{tag} class=l>{escape(label)}</{tag}>"
            + "".join(f"<{tag}>{c}</{tag}>" for c in cells)
            + "</tr>"
        )

    rows = [
        row("Heures machine (total)", [_hours(sum(a.machine_ms.values())) for a in columns], strong=True),
        *(row(f"  Secteur {s}", [_hours(a.sector_ms.get(s, 0)) for a in columns]) for s in sectors),
        *(row(f"  {name}", [_hours(a.machine_ms.get(slug, 0)) for a in columns]) for slug, (name, _) in report.machines.items()),
        row("Sessions d'utilisation", [str(a.sessions) for a in columns], strong=True),
        row("Membres utilisateurs (uniques)", [str(a.unique_members) for a in columns], strong=True),
        row("Nouveaux membres", [str(a.new_members) for a in columns], strong=True),
        row("Organisations servies", [str(a.organisations_served) for a in columns], strong=True),
    ]  # fmt: skip
    head = "".join(f"<th>{escape(a.label)}</th>" for a in columns)
    title = f"Rapport d'activité {what}" + (f" — {escape(association)}" if association else "")
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 10pt; }}
th, td {{ border: 1px solid #999; padding: 3px 6px; text-align: right; }}
.l {{ text-align: left; white-space: pre; }}
@media print {{ @page {{ size: A4 landscape; margin: 1cm; }} body {{ margin: 0; }} }}
</style></head>
<body>
<h1>{title}</h1>
<p>Heures de fonctionnement des machines (temps de marche mesuré), par machine et par secteur;
membres ayant utilisé au moins une machine; nouveaux membres; organisations servies.</p>
<table><thead><tr><th class=l></th>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""

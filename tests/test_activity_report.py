"""``atelier report activity``: the funders' figures, on both databases."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from cli.main import main
from demo.history import seed_history
from demo.workshop import GATEWAYS, MEMBERS, seed
from server.db import make_engine, make_session_factory
from server.models import UsageSession
from server.reports.activity import activity_report


def test_activity_report(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(database_url, now=datetime(2026, 3, 5, 9, tzinfo=UTC))  # every member joins in March
    history = seed_history(database_url, 3, today=date(2026, 5, 14))  # sessions Feb to Apr
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            running = int(db.scalar(sa.select(sa.func.sum(UsageSession.running_ms))) or 0)
            report = activity_report(db, 2026)
            march = activity_report(db, 2026, 3)
    finally:
        engine.dispose()
    year = report.total
    assert year is not None
    assert len(report.months) == 12
    assert year.sessions == history.sessions == sum(m.sessions for m in report.months)
    assert sum(year.machine_ms.values()) == running == sum(year.sector_ms.values())
    assert sum(sum(m.machine_ms.values()) for m in report.months) == running
    assert set(year.sector_ms) == {"industrial-sewing", "overlocker", "embroidery", "fdm-printer"}
    by_label = {m.label: m for m in report.months}
    assert by_label["2026-01"].sessions == 0
    assert by_label["2026-05"].sessions == 0
    users = sum(1 for p in MEMBERS if p.skills)
    assert year.unique_members == users  # everyone certified used a machine, counted once
    assert by_label["2026-03"].new_members == len(MEMBERS) == year.new_members
    assert by_label["2026-02"].new_members == 0
    assert year.organisations_served == 1
    assert march.total is None
    assert march.months == [by_label["2026-03"]]

    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    out, page = tmp_path / "activity.csv", tmp_path / "activity.html"
    assert main(["report", "activity", "--year", "2026", "--out", str(out), "--html", str(page)]) == 0
    rows = list(csv.reader(out.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["figure", "key", "name", *(f"2026-{m:02d}" for m in range(1, 13)), "2026"]
    figures = {(r[0], r[1]): r[3:] for r in rows[1:]}
    assert float(figures[("machine_hours", "total")][-1]) == pytest.approx(running / 3_600_000, abs=0.01)
    assert figures[("unique_members", "total")][-1] == str(users)
    assert {slug for kind, slug in figures if kind == "machine_hours"} == {
        "total",
        *(m.id for g in GATEWAYS for m in g.machines),
    }
    html = page.read_text(encoding="utf-8")
    assert "Rapport d'activité 2026" in html
    assert "Organisations servies" in html
    assert "Piqueuse plate Juki DDL-8700 n°1" in html
    assert main(["report", "activity", "--year", "2026", "--month", "13", "--out", str(out)]) == 1

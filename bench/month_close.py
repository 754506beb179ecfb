"""The month close at scale: 10,000 members and 1,000,000 usage sessions in one month, on SQLite.

Builds a fresh SQLite database (bulk inserts through SQLAlchemy Core, in chunks): 10,000
members of whom some are on a plan, some in partner associations and some paid for by one
of 50 organisations; 100 machines in 5 classes on 10 gateways; a price version per class
in a standard and a member list; 1,000,000 ended sessions spread over March 2026. Then
times :func:`server.billing.monthly.close_month` for that month and the commit after it,
on a fresh copy of the database for each run. Target: the close in ≤ 30 s.

    .venv/bin/python bench/month_close.py [--members 10000] [--sessions 1000000] [--runs 3]
    .venv/bin/python bench/month_close.py --db /tmp/bench.db --reuse --runs 3  # seed once, close again
    .venv/bin/python bench/month_close.py --sessions 100000 --profile close.prof  # where the time goes
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from server import workshop
from server.billing.monthly import close_month
from server.billing.periods import Period
from server.billing.store import add_price_version, insert_rows
from server.db import make_engine, make_session_factory, upgrade_database
from server.models import (
    BillingSettings,
    Machine,
    Member,
    MemberPlan,
    Organisation,
    PlanMinutes,
    PlanRow,
    PriceList,
    UsageSession,
)

PERIOD = Period(2026, 3)
CLASSES = ("sewing", "overlocker", "embroidery", "laser", "printer")
GATEWAYS = 10
MACHINES = 100
ORGANISATIONS = 50


def build(url: str, members: int, sessions: int) -> None:
    upgrade_database(url)
    engine = make_engine(url)
    rng = random.Random(42)
    try:
        with make_session_factory(engine)() as db:
            db.add(
                BillingSettings(
                    name="Atelier Partagé", address="12 rue des Ateliers\n75011 Paris", siret="73282932000074",
                    creditor_id="FR72ZZZ123456", iban="FR7630006000011234567890189", bic="AGRIFRPP",
                )
            )  # fmt: skip
            for g in range(GATEWAYS):
                workshop.add_gateway(db, f"gw-{g}", site="bench")
            for m in range(MACHINES):
                workshop.add_machine(
                    db, f"m-{m}", f"Machine {m}", machine_class=CLASSES[m % len(CLASSES)], gateway=f"gw-{m % GATEWAYS}"
                )  # fmt: skip
            for n, machine_class in enumerate(CLASSES):
                add_price_version(
                    db, "standard", code=f"std-{machine_class}", machine_class=machine_class,
                    valid_from=date(2026, 1, 1), running_cents=300 + 100 * n, running_per=60,
                    session_fee_cents=50, daily_cap_cents=4000,
                )  # fmt: skip
                add_price_version(
                    db, "member", code=f"mbr-{machine_class}", machine_class=machine_class,
                    valid_from=date(2026, 1, 1), running_cents=200 + 50 * n, running_per=60,
                )  # fmt: skip
            member_list = db.scalar(sa.select(PriceList.id).where(PriceList.code == "member"))
            plan = PlanRow(code="creator", name="Créateur", monthly_fee_cents=2000)
            db.add(plan)
            db.flush()
            db.add(PlanMinutes(plan_id=plan.id, machine_class="sewing", minutes=120))
            insert_rows(
                db,
                Organisation,
                [
                    {"name": f"Organisation {o}", "address": "", "price_list_id": member_list}
                    for o in range(ORGANISATIONS)
                ],
            )
            org_ids = list(db.scalars(sa.select(Organisation.id)))
            now = datetime(2026, 1, 1, tzinfo=UTC)
            insert_rows(
                db,
                Member,
                [
                    {
                        "name": f"Member {i}", "email": f"m{i}@example.org", "status": "active", "created_at": now,
                        "is_manager": False, "is_treasurer": False, "address": f"{i} rue de la Paix\n75002 Paris",
                        "organisation_id": org_ids[i % ORGANISATIONS] if i % 20 == 0 else None,
                        "partner_association": "Partenaire" if i % 7 == 0 else None, "prepaid": False,
                    }
                    for i in range(members)
                ],
            )  # fmt: skip
            member_ids = list(db.scalars(sa.select(Member.id).order_by(Member.id)))
            insert_rows(
                db,
                MemberPlan,
                [
                    {"member_id": m, "plan_id": plan.id, "valid_from": date(2026, 1, 1)}
                    for m in member_ids[::10]
                ],
            )
            machines = list(db.execute(sa.select(Machine.id, Machine.gateway_id).order_by(Machine.id)))
            start, _ = PERIOD.bounds()
            seconds = 31 * 24 * 3600 - 4 * 3600
            chunk: list[dict[str, Any]] = []
            for s in range(sessions):
                machine_id, gateway_id = machines[rng.randrange(MACHINES)]
                started = start + timedelta(seconds=rng.randrange(seconds))
                running = rng.randint(10, 120) * 60_000 + rng.randrange(60_000)
                idle = rng.randint(2, 20) * 60_000
                chunk.append(
                    {
                        "session_id": f"bench-{s:07d}", "gateway_id": gateway_id, "machine_id": machine_id,
                        "member_id": member_ids[rng.randrange(members)], "badge_uid": None, "supervisor_id": None,
                        "decided_by": "server", "started_at": started,
                        "ended_at": started + timedelta(milliseconds=running + idle),
                        "unlocked_ms": running + idle, "running_ms": running, "idle_ms": idle, "energy_wh": None,
                        "end_reason": "badge_out", "last_event_seq": s + 1,
                    }
                )  # fmt: skip
                if len(chunk) == 50_000:
                    insert_rows(db, UsageSession, chunk)
                    chunk = []
            insert_rows(db, UsageSession, chunk)
            db.commit()
    finally:
        engine.dispose()


def close(url: str, profile: str | None, parallel: bool | None) -> tuple[float, float, int, int]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db:
            profiler = cProfile.Profile() if profile else None
            began = time.perf_counter()
            if profiler:
                profiler.enable()
            result = close_month(db, PERIOD, date(2026, 4, 1), parallel=parallel)
            closed = time.perf_counter()
            db.commit()
            committed = time.perf_counter()
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)  # type: ignore[arg-type]
            return committed - began, committed - closed, len(result.closed.invoices), result.sessions
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--db", help="the SQLite file to build (default: a temporary one)")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the --db file if it is there (seeded before)"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="close the month this many times, each on a fresh copy"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="rate and invoice in this process (no second process)"
    )
    parser.add_argument("--profile", help="write a cProfile of the close to this file (implies --in-process)")
    args = parser.parse_args()
    directory = tempfile.TemporaryDirectory(prefix="atelier-bench-")
    seeded = Path(args.db) if args.db else Path(directory.name) / "bench.db"
    print(
        f"Python {platform.python_version()} on {platform.machine()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs"
    )
    if not (args.reuse and seeded.exists()):
        seeded.unlink(missing_ok=True)
        began = time.perf_counter()
        build(f"sqlite:///{seeded.resolve()}", args.members, args.sessions)
        print(
            f"seed: {time.perf_counter() - began:.1f} s "
            f"({args.members} members, {args.sessions} sessions in {PERIOD})"
        )
    parallel = False if args.in_process or args.profile else None
    totals = []
    for run in range(1, args.runs + 1):
        copy = seeded.with_name(f"{seeded.name}.run")
        for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(seeded, copy)
        total, commit, invoices, rated = close(f"sqlite:///{copy.resolve()}", args.profile, parallel)
        totals.append(total)
        print(
            f"close {run}: {total:.1f} s (of which commit {commit:.1f} s): "
            f"{invoices} invoices, {rated} sessions rated"
        )
        copy.unlink()
    middle = statistics.median(totals)
    print(f"median of {len(totals)}: {middle:.1f} s; target ≤ 30 s: {'met' if middle <= 30 else 'MISSED'}")
    directory.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

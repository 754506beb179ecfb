"""What a decision and an event cost on PostgreSQL, in one process, without MQTT.

:func:`server.access.decide` and :func:`server.usage.ingest` called in a loop on a spawned
PostgreSQL (loopback TCP, as ``bench/load.py``), each with a session of its own as the MQTT
lanes use them: the wall time of each call, and the process's CPU time per call. Variants of
the engine show what the round trips cost: as shipped (a connection checked only when idle over
a second, so never here; ``decide()`` reads in autocommit and writes its log row alone: two
round trips; ``ingest()`` BEGIN, its statements, COMMIT), with SQLAlchemy's ``pool_pre_ping``
(an empty statement at every checkout, as shipped before issue 10's "fewer round trips"), and an
engine in autocommit without checks (for ``ingest()`` no BEGIN nor COMMIT round trip; a measure,
not a proposal: its statements would no longer commit together). The variants alternate, twice.

    .venv/bin/python bench/database_path.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from protocol.messages import AccessRequest, EventKind, UsageEvent  # noqa: E402
from server import workshop  # noqa: E402
from server.access import decide  # noqa: E402
from server.clock import to_ms, utc_now  # noqa: E402
from server.db import SessionFactory, make_engine, make_session_factory, upgrade_database  # noqa: E402
from server.usage import ingest  # noqa: E402
from tests.services import postgres  # noqa: E402

SITE, GATEWAY, MACHINE, BADGE = "bench", "gw-bench", "sew-1", "04A1B2C3D4"
WARM_UP = 100


def seed(url: str) -> None:
    upgrade_database(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as db:
        workshop.add_skill(db, "industrial-sewing", "Industrial sewing")
        workshop.add_gateway(db, GATEWAY, site=SITE)
        workshop.add_machine(
            db,
            MACHINE,
            "Juki",
            machine_class="sewing",
            gateway=GATEWAY,
            required_skills=["industrial-sewing"],
        )
        member = workshop.add_member(db, "Bench Member", badge=BADGE)
        workshop.grant_certification(db, member.id, "industrial-sewing")
        db.commit()
    engine.dispose()


def one_decision(sessions: SessionFactory) -> None:
    now = utc_now()
    request = AccessRequest(
        request_id=uuid.uuid4().hex,
        machine=MACHINE,
        badge=BADGE,
        sent_at_ms=to_ms(now),
        expires_at_ms=to_ms(now) + 500,
    )
    with sessions() as db:
        if not decide(db, SITE, GATEWAY, request, now).granted:
            raise RuntimeError("refused")


_seqs = itertools.count(1)


def one_event(sessions: SessionFactory) -> None:
    seq = next(_seqs)
    now = utc_now()
    event = UsageEvent(
        seq=seq,
        session_id=f"s-{seq // 4}",
        machine=MACHINE,
        kind=EventKind.SESSION_STARTED if seq % 4 == 0 else EventKind.RUNNING_STARTED,
        at_ms=to_ms(now),
        unlocked_ms=seq % 4 * 1000,
        idle_ms=seq % 4 * 1000,
    )
    with sessions() as db:
        if not ingest(db, GATEWAY, event, now, site=SITE).ok:
            raise RuntimeError("refused")


def measure(name: str, call: Callable[[SessionFactory], None], sessions: SessionFactory, calls: int) -> None:
    for _ in range(WARM_UP):
        call(sessions)
    walls = []
    cpu, began = time.process_time(), time.perf_counter()
    for _ in range(calls):
        start = time.perf_counter()
        call(sessions)
        walls.append((time.perf_counter() - start) * 1000)
    total, cpu = time.perf_counter() - began, time.process_time() - cpu
    walls.sort()
    print(
        f"{name:<44} p50 {statistics.median(walls):.3f} ms  p99 {walls[int(len(walls) * 0.99)]:.3f} ms  "
        f"CPU {1000 * cpu / calls:.3f} ms a call  {calls / total:.0f} calls/s",
        flush=True,
    )


def run(calls: int) -> None:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load}", flush=True)
    with postgres() as database:
        seed(database.url)
        shipped = make_engine(database.url)
        pre_ping = make_engine(database.url, pool_pre_ping=True)
        autocommit = make_engine(database.url, pool_pre_ping=False, isolation_level="AUTOCOMMIT")
        variants = {
            "as shipped": shipped,
            "with pool_pre_ping": pre_ping,
            "without checks, autocommit": autocommit,
        }
        try:
            for _ in range(2):
                for what, call in (("decide()", one_decision), ("ingest()", one_event)):
                    for name, engine in variants.items():
                        measure(f"{what}, {name}", call, make_session_factory(engine), calls)
        finally:
            for engine in variants.values():
                engine.dispose()
        with make_engine(database.url).connect() as connection:
            events = connection.execute(sa.text("SELECT count(*) FROM gateway_events")).scalar_one()
        print(f"{events} events applied")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls measured per variant (2000)")
    run(parser.parse_args().calls)


if __name__ == "__main__":
    main()

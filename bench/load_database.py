"""The database of ``bench/load.py``: the workshop it seeds, and its books at the end of a load.

The books check exactly once: every request answered and logged once, every event applied once,
against what the workers sent and were told.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bench.load_gateways import machine_slug
from server import workshop
from server.db import make_engine, make_session_factory, upgrade_database

SITE = "load"
SKILL = "industrial-sewing"


# --- the workshop ------------------------------------------------------------------------------


def gateway_slugs(count: int) -> list[str]:
    return [f"gw-{number:04d}" for number in range(count)]


def badge_uids(count: int) -> list[str]:
    return [f"{0x10000000 + number:08X}" for number in range(count)]


def seed(database_url: str, gateways: int, machines: int, members: int) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as db:
        workshop.add_skill(db, SKILL, "Industrial sewing")
        for slug in gateway_slugs(gateways):
            workshop.add_gateway(db, slug, site=SITE)
            for number in range(1, machines + 1):
                workshop.add_machine(
                    db, machine_slug(slug, number), "Juki", machine_class="sewing", gateway=slug,
                    required_skills=[SKILL],
                )  # fmt: skip
        for number, badge in enumerate(badge_uids(members)):
            member = workshop.add_member(db, f"Member {number}", badge=badge)
            if number % 10:  # one in ten is not certified, and is refused
                workshop.grant_certification(db, member.id, SKILL)
        db.commit()
    engine.dispose()


def clear_usage(database_url: str) -> None:
    """A run starts on empty logs, so that the books at its end count its own rows only."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE access_decisions, gateway_events, usage_sessions CASCADE"))
    engine.dispose()


# --- the books ---------------------------------------------------------------------------------


def books(mode: str, run: str, database_url: str, totals: dict[str, int], *, floor: bool) -> dict[str, Any]:
    """What the database holds against what the workers sent and were told: exactly once."""
    if floor:  # echo responders write nothing: only the answers can be counted
        extra = {"twice": totals["duplicates"], "unanswered": totals["unanswered"]}
        return {"exactly_once": not any(extra.values()), "database": "not used (floor)", **extra}
    engine = make_engine(database_url)
    with engine.connect() as db:
        if mode == "decisions":
            logged, distinct, twice = db.execute(
                sa.text(
                    "SELECT count(*), count(DISTINCT request_id), "
                    "(SELECT count(*) FROM (SELECT request_id FROM access_decisions WHERE request_id LIKE :run "
                    "GROUP BY request_id HAVING count(*) > 1) AS t) "
                    "FROM access_decisions WHERE request_id LIKE :run"
                ),
                {"run": f"{run}-%"},
            ).one()
            found = {"decisions_logged": logged, "distinct_requests": distinct, "logged_twice": twice}
            expected = {
                "decisions_logged": totals["sent"],
                "distinct_requests": totals["sent"],
                "logged_twice": 0,
            }
            extra = {"replies_twice": totals["duplicates"], "unanswered": totals["unanswered"]}
        else:
            applied = db.execute(sa.text("SELECT count(*) FROM gateway_events")).scalar_one()
            sessions, ended, running = db.execute(
                sa.text(
                    "SELECT count(*), count(ended_at), coalesce(sum(running_ms), 0) FROM usage_sessions "
                    "WHERE session_id LIKE :run"
                ),
                {"run": f"{run}-%"},
            ).one()
            found = {
                "events_applied": applied,
                "sessions": sessions,
                "ended": ended,
                "running_ms": int(running),
            }
            expected = {
                "events_applied": totals["unique"],
                "sessions": totals["sessions_started"],
                "ended": totals["sessions_ended"],
                "running_ms": totals["running_ms"],
            }
            extra = {
                "acks_beyond_copies": totals["duplicates"],
                "unacked": totals["unanswered"],
                "refused": totals["refused_acks"],
                "acks_vs_publications": totals["answered"] - totals["sent"],
            }
    engine.dispose()
    exact = found == expected and not any(extra.values())
    return {"exactly_once": exact, "found": found, "expected": expected, **extra}

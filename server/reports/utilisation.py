"""Machine utilisation: hours running against hours unlocked, per machine, from usage sessions.

It reads the usage sessions in the SQL database (built from the gateways'
events, exactly once), not the telemetry: the figures are the ones billing
sees, and they hold with no time-series store at all. A session counts in the
period it started in, with its totals so far if it is still open; splitting a
session across the period's edges would need the events' times, and a month's
figures move by at most one session per machine at each edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.models import Gateway, Machine, UsageSession

_MS_PER_HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class MachineUtilisation:
    machine: str
    name: str
    gateway: str | None
    sessions: int
    running_ms: int
    unlocked_ms: int

    @property
    def running_hours(self) -> float:
        return self.running_ms / _MS_PER_HOUR

    @property
    def unlocked_hours(self) -> float:
        return self.unlocked_ms / _MS_PER_HOUR

    @property
    def ratio(self) -> float | None:
        """Running time over unlocked time (0 to 1); None when the machine was never unlocked."""
        return self.running_ms / self.unlocked_ms if self.unlocked_ms else None


def machine_utilisation(db: Session, since: datetime, until: datetime) -> list[MachineUtilisation]:
    """Every machine, by id, with its sessions started in ``[since, until)``; idle machines show zeros."""
    totals = (
        sa.select(
            UsageSession.machine_id,
            sa.func.count().label("sessions"),
            sa.func.sum(UsageSession.running_ms).label("running_ms"),
            sa.func.sum(UsageSession.unlocked_ms).label("unlocked_ms"),
        )
        .where(UsageSession.started_at >= since, UsageSession.started_at < until)
        .group_by(UsageSession.machine_id)
        .subquery()
    )
    query = (
        sa.select(
            Machine.slug,
            Machine.name,
            Gateway.slug,
            sa.func.coalesce(totals.c.sessions, 0),
            sa.func.coalesce(totals.c.running_ms, 0),
            sa.func.coalesce(totals.c.unlocked_ms, 0),
        )
        .outerjoin(totals, totals.c.machine_id == Machine.id)
        .outerjoin(Gateway, Gateway.id == Machine.gateway_id)
        .order_by(Machine.slug)
    )
    # int(): PostgreSQL sums BIGINT as NUMERIC, which arrives as a Decimal.
    return [
        MachineUtilisation(
            machine=slug,
            name=name,
            gateway=gateway,
            sessions=int(sessions),
            running_ms=int(running),
            unlocked_ms=int(unlocked),
        )
        for slug, name, gateway, sessions, running, unlocked in db.execute(query)
    ]

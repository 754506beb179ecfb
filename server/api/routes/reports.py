"""Reports from the workshop's own database: machine utilisation (managers and treasurers)."""

from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, status
from pydantic import AwareDatetime, BaseModel

from server.api.deps import SessionDep
from server.auth.policy import BillingRead
from server.clock import utc_now
from server.reports import machine_utilisation

router = APIRouter(prefix="/reports", tags=["reports"])

DEFAULT_PERIOD = timedelta(days=30)


class MachineUtilisationOut(BaseModel):
    machine: str
    name: str
    gateway: str | None
    sessions: int
    running_ms: int
    unlocked_ms: int
    running_hours: float
    unlocked_hours: float
    utilisation: float | None
    """Hours running over hours unlocked, 0 to 1; null when the machine was never unlocked."""


class UtilisationOut(BaseModel):
    since: datetime
    until: datetime
    machines: list[MachineUtilisationOut]


@router.get("/utilisation")
def utilisation(
    caller: BillingRead,
    db: SessionDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> UtilisationOut:
    """Per machine, hours running against hours unlocked, from the sessions started in
    ``[since, until)`` (by default the 30 days up to now). A session counts in the period it
    started in; an open one with its totals so far. No time-series store is involved."""
    until = until or utc_now()
    since = since or until - DEFAULT_PERIOD
    if since >= until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since must be before until")
    machines = [
        MachineUtilisationOut(
            machine=row.machine,
            name=row.name,
            gateway=row.gateway,
            sessions=row.sessions,
            running_ms=row.running_ms,
            unlocked_ms=row.unlocked_ms,
            running_hours=round(row.running_hours, 4),
            unlocked_hours=round(row.unlocked_hours, 4),
            utilisation=round(row.ratio, 4) if row.ratio is not None else None,
        )
        for row in machine_utilisation(db, since, until)
    ]
    return UtilisationOut(since=since, until=until, machines=machines)

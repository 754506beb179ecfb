"""The live workshop: every machine with what it is doing now, and today's usage.

What a machine is doing comes from its gateway's retained state, kept in memory by the
MQTT handlers (:class:`server.live.LiveWorkshop`); whether it is locked out, whether its
gateway is online and today's usage come from the database. Without a state from the
gateway (the server just started, or runs without MQTT), an open usage session still
says the machine is in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import MachineStateName
from server.billing.periods import WORKSHOP_TZ, workshop_day
from server.live import LiveMachine, LiveWorkshop
from server.models import Gateway, GatewayState, Machine, Member, UsageSession


class Status(StrEnum):
    """What the live view says of a machine; each has a label (``live.status.*``) and a shape."""

    LOCKED = "locked"  # free: waiting for a badge
    AUTHORISING = "authorising"
    IN_USE = "in_use"  # running
    IDLE = "idle"  # unlocked for someone, not running
    OFFLINE = "offline"  # its gateway is not online (or it has none)
    LOCKED_OUT = "locked_out"


@dataclass(frozen=True)
class MachineView:
    slug: str
    name: str
    machine_class: str
    gateway: str | None
    status: Status
    member_id: int | None
    member_name: str | None
    since: datetime | None
    lockout_reason: str | None
    today_sessions: int
    today_running_ms: int


@dataclass(frozen=True)
class TodaySession:
    machine: str
    machine_name: str
    member_id: int | None
    member_name: str | None
    started_at: datetime
    ended_at: datetime | None
    running_ms: int
    idle_ms: int


@dataclass(frozen=True)
class Snapshot:
    machines: list[MachineView]
    today: list[TodaySession]
    total_running_ms: int

    def count(self, status: Status) -> int:
        return sum(1 for machine in self.machines if machine.status is status)


def today_bounds(now: datetime) -> tuple[datetime, datetime]:
    day = workshop_day(now)
    start = datetime.combine(day, datetime.min.time(), tzinfo=WORKSHOP_TZ)
    return start, start + timedelta(days=1)


_FROM_LIVE = {
    MachineStateName.LOCKED: Status.LOCKED,
    MachineStateName.AUTHORISING: Status.AUTHORISING,
    MachineStateName.UNLOCKED: Status.IDLE,
    MachineStateName.RUNNING: Status.IN_USE,
}


def _status(
    machine: Machine, gateway_state: GatewayState | None, live: LiveMachine | None, open_member: int | None
) -> tuple[Status, int | None, datetime | None]:
    member = live.member_id if live is not None else open_member
    since = live.at if live is not None else None
    if machine.locked_out:
        return Status.LOCKED_OUT, member, since
    if gateway_state is not GatewayState.ONLINE:
        return Status.OFFLINE, None, None
    if live is not None:
        status = _FROM_LIVE[live.state]
        return status, member if status is not Status.LOCKED else None, since
    return (Status.IN_USE, open_member, None) if open_member is not None else (Status.LOCKED, None, None)


def snapshot(db: Session, live: LiveWorkshop, now: datetime) -> Snapshot:
    """Every machine (by name) with its status, and the sessions started today."""
    start, end = today_bounds(now)
    states = live.machines()
    rows = db.execute(
        sa.select(Machine, Gateway.slug, Gateway.state)
        .outerjoin(Gateway, Gateway.id == Machine.gateway_id)
        .order_by(Machine.name, Machine.slug)
    ).all()
    open_sessions = dict(
        db.execute(
            sa.select(UsageSession.machine_id, UsageSession.member_id).where(UsageSession.ended_at.is_(None))
        ).all()
    )
    today = [
        TodaySession(slug, name, member_id, member_name, started, ended, running, idle)
        for slug, name, member_id, member_name, started, ended, running, idle in db.execute(
            sa.select(
                Machine.slug,
                Machine.name,
                UsageSession.member_id,
                Member.name,
                UsageSession.started_at,
                UsageSession.ended_at,
                UsageSession.running_ms,
                UsageSession.idle_ms,
            )
            .join(Machine, Machine.id == UsageSession.machine_id)
            .outerjoin(Member, Member.id == UsageSession.member_id)
            .where(UsageSession.started_at >= start, UsageSession.started_at < end)
            .order_by(UsageSession.started_at.desc(), UsageSession.id.desc())
        )
    ]
    per_machine: dict[str, tuple[int, int]] = {}
    for session in today:
        count, running = per_machine.get(session.machine, (0, 0))
        per_machine[session.machine] = (count + 1, running + session.running_ms)
    wanted: set[int] = set()
    found = []
    for machine, gateway_slug, gateway_state in rows:
        state = states.get(machine.slug)
        if state is not None and state.gateway != gateway_slug:
            state = None  # a state from another gateway than the machine's: not this machine's
        status, member, since = _status(machine, gateway_state, state, open_sessions.get(machine.id))
        if member is not None:
            wanted.add(member)
        found.append((machine, gateway_slug, status, member, since))
    names = (
        dict(db.execute(sa.select(Member.id, Member.name).where(Member.id.in_(sorted(wanted)))).all())
        if wanted
        else {}
    )
    machines = [
        MachineView(
            slug=machine.slug,
            name=machine.name,
            machine_class=machine.machine_class,
            gateway=gateway_slug,
            status=status,
            member_id=member,
            member_name=names.get(member) if member else None,
            since=since,
            lockout_reason=machine.lockout_reason,
            today_sessions=per_machine.get(machine.slug, (0, 0))[0],
            today_running_ms=per_machine.get(machine.slug, (0, 0))[1],
        )
        for machine, gateway_slug, status, member, since in found
    ]
    return Snapshot(machines, today, sum(s.running_ms for s in today))

"""The books of one usage session: who opened it, how long the machine was powered and ran,
the energy it drew where that is known, and how long the member's balance pays for.

Pure, like :mod:`controller.machine`: times are monotonic seconds given by the
caller. Durations in events are the session's totals so far, so that an
event applied late changes nothing (docs/protocol.md, section 11).
"""

from dataclasses import dataclass

from controller.actions import EndReason, SessionEvent
from controller.metering import EnergyMeter, Supply
from protocol.messages import DecidedBy, EventKind


@dataclass(slots=True)
class Session:
    session_id: str
    machine: str
    badge: str | None
    member_id: int | None
    supervisor_id: int | None
    started: float
    running_s: float = 0.0  # closed running stretches
    running_since: float | None = None  # the open one, if running
    idle_s: float = 0.0  # closed idle stretches
    idle_since: float | None = None  # the open one, if idle (set when the session opens)
    energy: EnergyMeter | None = None  # None: the machine's voltage is not known
    limit_s: float | None = None  # prepaid: unlocked time the balance pays for; None: no limit

    @classmethod
    def open(
        cls,
        session_id: str,
        machine: str,
        *,
        badge: str | None,
        member_id: int | None,
        supervisor_id: int | None,
        now: float,
        supply: Supply | None,
        amps: float,
        max_minutes: int | None,
    ) -> "Session":
        """A session opened at ``now``, drawing ``amps``; ``max_minutes`` from a prepaid grant."""
        return cls(
            session_id,
            machine,
            badge,
            member_id,
            supervisor_id,
            now,
            idle_since=now,
            energy=None if supply is None else EnergyMeter(supply, now, amps),
            limit_s=None if max_minutes is None else max_minutes * 60.0,
        )

    def limit_reached(self, now: float) -> bool:
        return self.limit_s is not None and now - self.started >= self.limit_s

    def start_running(self, since: float) -> None:
        if self.idle_since is not None:
            self.idle_s += max(0.0, since - self.idle_since)
            self.idle_since = None
        self.running_since = since

    def stop_running(self, since: float) -> None:
        assert self.running_since is not None
        self.running_s += max(0.0, since - self.running_since)
        self.running_since = None
        self.idle_since = since

    def event(
        self,
        kind: EventKind,
        now: float,
        wall: int,
        end_reason: EndReason | None = None,
        decided_by: DecidedBy | None = None,
    ) -> SessionEvent:
        # Running and idle are each a sum of closed stretches and at most one open one, so each
        # only grows from one event to the next, and so does its rounding; unlocked is their
        # sum. (Rounding unlocked and running, and taking idle as the difference, made idle
        # flip between two values while the machine ran: a later event could say 1 ms less.)
        running_s, idle_s = self.running_s, self.idle_s
        if self.running_since is not None:
            running_s += max(0.0, now - self.running_since)
        if self.idle_since is not None:
            idle_s += max(0.0, now - self.idle_since)
        running_ms, idle_ms = round(running_s * 1000), round(idle_s * 1000)
        return SessionEvent(
            session_id=self.session_id,
            machine=self.machine,
            kind=kind,
            at_ms=wall,
            badge=self.badge,
            member_id=self.member_id,
            decided_by=decided_by,
            supervisor_id=self.supervisor_id,
            unlocked_ms=running_ms + idle_ms,  # the three always add up exactly
            running_ms=running_ms,
            idle_ms=idle_ms,
            end_reason=None if end_reason is None else end_reason.value,
            energy_wh=None if self.energy is None else self.energy.wh(now),
        )

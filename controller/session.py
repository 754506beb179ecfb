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
            energy=None if supply is None else EnergyMeter(supply, now, amps),
            limit_s=None if max_minutes is None else max_minutes * 60.0,
        )

    def limit_reached(self, now: float) -> bool:
        return self.limit_s is not None and now - self.started >= self.limit_s

    def start_running(self, since: float) -> None:
        self.running_since = since

    def stop_running(self, since: float) -> None:
        assert self.running_since is not None
        self.running_s += since - self.running_since
        self.running_since = None

    def event(
        self,
        kind: EventKind,
        now: float,
        wall: int,
        end_reason: EndReason | None = None,
        decided_by: DecidedBy | None = None,
    ) -> SessionEvent:
        running_s = self.running_s
        if self.running_since is not None:
            running_s += now - self.running_since
        unlocked_ms = round((now - self.started) * 1000)
        running_ms = min(round(running_s * 1000), unlocked_ms)
        return SessionEvent(
            session_id=self.session_id,
            machine=self.machine,
            kind=kind,
            at_ms=wall,
            badge=self.badge,
            member_id=self.member_id,
            decided_by=decided_by,
            supervisor_id=self.supervisor_id,
            unlocked_ms=unlocked_ms,
            running_ms=running_ms,
            # Idle is the rest of the powered time, so the three always add up exactly.
            idle_ms=unlocked_ms - running_ms,
            end_reason=None if end_reason is None else end_reason.value,
            energy_wh=None if self.energy is None else self.energy.wh(now),
        )

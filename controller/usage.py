"""The half of a machine's interlock that meters its use: the open session and its power.

Pure, like :mod:`controller.machine`, which builds on it: no I/O, no clock; every
input carries ``now_mono`` and ``now_wall_ms`` and returns the actions to carry out.

Once a session is open the machine is unlocked; it is running while its current
(calibrated, :mod:`controller.metering`) stays above ``running_above_a``, and idle
again once it stays below ``idle_below_a`` (a hysteresis, each side with its delay).
The session's books (:mod:`controller.session`) count both. A session ends on a
badge-out, a lock command, a prepaid member's limit or the idle timeout, never while
the machine draws current: the end waits for idleness, unless the machine has a hard
limit (:attr:`MachineRules.hard_limit_s`).

Who may open a session (the badge, the server's decision, the offline judge,
supervision) is :class:`controller.machine.Machine`'s part.
"""

from collections.abc import Callable

from controller.actions import (
    Action,
    Emit,
    EndReason,
    PublishState,
    SessionEvent,
    Show,
    SwitchOff,
    SwitchOn,
)
from controller.hardware.interfaces import Signal
from controller.rules import MachineRules
from controller.session import Session
from protocol.messages import (
    AccessReply,
    DecidedBy,
    EventKind,
    MachineState,
    MachineStateName,
    Reason,
)

Locked, Authorising, Unlocked, Running = (
    MachineStateName.LOCKED,
    MachineStateName.AUTHORISING,
    MachineStateName.UNLOCKED,
    MachineStateName.RUNNING,
)


SIGNALS = {
    Locked: Signal.LOCKED,
    Authorising: Signal.AUTHORISING,
    Unlocked: Signal.GRANTED,
    Running: Signal.RUNNING,
}
"""What the lights show in each state."""


class UsageInterlock:
    """The session side of machine ``machine_id``'s interlock. Starts locked, with no session."""

    def __init__(self, machine_id: str, rules: MachineRules, *, new_id: Callable[[], str]) -> None:
        self.machine_id = machine_id
        self.rules = rules
        self._new_id = new_id
        self._state = Locked
        self._session: Session | None = None
        self._above_since: float | None = None  # current above running_above_a since (unlocked)
        self._below_since: float | None = None  # current below idle_below_a since (running)
        self._idle_since = 0.0
        self._end_when_idle: EndReason | None = None  # a lock or badge-out waiting for idleness
        self._end_asked_at = 0.0  # when _end_when_idle was set, for the hard limit
        self._display_until: float | None = None  # a refusal (or a certification) is shown until then
        self._now = float("-inf")
        self.amps = 0.0
        """The last current sample, calibrated."""

    # What the gateway and the demo can read.

    @property
    def state(self) -> MachineStateName:
        return self._state

    @property
    def session_id(self) -> str | None:
        return None if self._session is None else self._session.session_id

    @property
    def member_id(self) -> int | None:
        return None if self._session is None else self._session.member_id

    @property
    def supervisor_id(self) -> int | None:
        """The supervising trainer of the open session, when it was granted under supervision."""
        return None if self._session is None else self._session.supervisor_id

    @property
    def seen_until(self) -> float:
        """The latest monotonic time an input has brought (time never goes back here)."""
        return self._now

    @property
    def signal(self) -> Signal:
        """What the lights show in this state (outside a passing refusal)."""
        return SIGNALS[self._state]

    @property
    def end_pending(self) -> EndReason | None:
        """A lock or badge-out that waits for the machine to stop drawing current."""
        return self._end_when_idle

    @property
    def drawing(self) -> bool:
        """Running, or current rising towards it: power must stay on, and nobody takes over."""
        return self._state is Running or self._above_since is not None

    @property
    def watts(self) -> float | None:
        """The power of the last sample, when the machine's voltage is known."""
        supply = self.rules.supply
        return None if supply is None else supply.watts(self.amps)

    def snapshot(self, now_wall_ms: int) -> MachineState:
        return MachineState(
            machine=self.machine_id,
            state=self._state,
            session_id=self.session_id,
            member_id=self.member_id,
            at_ms=now_wall_ms,
        )

    # Inputs.

    def current(self, raw_amps: float, now_mono: float, now_wall_ms: int) -> list[Action]:
        """A current sample, as the sensor reads it (calibrated here). Also lets time pass, like ``Machine.tick``."""
        now = self._clock(now_mono)
        self.amps = amps = self.rules.calibration.amps(raw_amps)
        if self._session is not None and self._session.energy is not None:
            self._session.energy.sample(amps, now)
        actions: list[Action] = []
        if self._state is Unlocked:
            if amps > self.rules.running_above_a:
                self._above_since = now if self._above_since is None else self._above_since
                if now - self._above_since >= self.rules.running_after_s:
                    actions += self._start_running(self._above_since, now, now_wall_ms)
            else:
                self._above_since = None
        elif self._state is Running:
            if amps < self.rules.idle_below_a:
                self._below_since = now if self._below_since is None else self._below_since
                if now - self._below_since >= self.rules.idle_after_s:
                    actions += self._stop_running(self._below_since, now, now_wall_ms)
            else:
                self._below_since = None
        more = self._timers(now, now_wall_ms)[1]
        return actions + more

    def checkpoint(self, now_mono: float, now_wall_ms: int) -> SessionEvent | None:
        """The open session's books as they would close if the gateway died now, or None.

        The gateway journals this every few seconds; a gateway restarted after a crash
        ends the session with the last one (:meth:`controller.journal.Journal.recover`).
        """
        if self._session is None:
            return None
        now = self._clock(now_mono)
        return self._event(EventKind.SESSION_ENDED, now, now_wall_ms, EndReason.GATEWAY_RESTART)

    # Rules.

    def _clock(self, now_mono: float) -> float:
        # A monotonic clock never goes back; should a caller's do, time stands still instead.
        self._now = max(self._now, now_mono)
        return self._now

    def _timers(self, now_mono: float, now_wall_ms: int) -> tuple[float, list[Action]]:
        now = self._clock(now_mono)
        return now, self._usage_timers(now, now_wall_ms)

    def _usage_timers(self, now: float, now_wall_ms: int) -> list[Action]:
        """Time passes for the session: the end of a display, limits, the idle timeout."""
        actions: list[Action] = []
        if self._display_until is not None and now >= self._display_until:
            self._display_until = None
            actions.append(Show(SIGNALS[self._state]))
        if self._session is not None and self._end_when_idle is None and self._session.limit_reached(now):
            self._defer_end(EndReason.PREPAID_LIMIT, now)  # ends below, or once the machine is idle
        hard_limit = self.rules.hard_limit_s
        if (
            self._end_when_idle is not None
            and hard_limit is not None
            and self._session is not None
            and now - self._end_asked_at >= hard_limit
        ):
            # Waited long enough for idleness on a machine that must not run on unattended.
            if self._state is Running:
                self._session.stop_running(now)
            actions += self._end_session(EndReason.HARD_LIMIT, now, now_wall_ms)
        if self._state is Unlocked and self._above_since is None:
            if self._end_when_idle is not None:
                actions += self._end_session(self._end_when_idle, now, now_wall_ms)
            elif now - self._idle_since >= self.rules.idle_timeout_s:
                actions += self._end_session(EndReason.IDLE_TIMEOUT, now, now_wall_ms)
        return actions

    def _defer_end(self, reason: EndReason, now: float) -> None:
        if self._end_when_idle is None:
            self._end_when_idle = reason
            self._end_asked_at = now

    def _settle(self, now_wall_ms: int) -> list[Action]:
        """Show and publish the state just entered."""
        self._display_until = None
        return [Show(SIGNALS[self._state]), PublishState(self.snapshot(now_wall_ms))]

    def _flash(self, signal: Signal, reason: Reason | None, now: float) -> list[Action]:
        """Show ``signal`` for a moment, then the machine's state again."""
        self._display_until = now + self.rules.denied_display_s
        return [Show(signal, reason)]

    def _deny(self, reason: Reason | None, now: float) -> list[Action]:
        return self._flash(Signal.DENIED, reason, now)

    def _start_session(
        self,
        badge: str | None,
        member_id: int | None,
        supervisor_id: int | None,
        now: float,
        limit: int | None,
    ) -> None:
        self._session = Session.open(
            self._new_id(),
            self.machine_id,
            badge=badge,
            member_id=member_id,
            supervisor_id=supervisor_id,
            now=now,
            supply=self.rules.supply,
            amps=self.amps,
            max_minutes=limit,
        )
        self._state = Unlocked
        self._idle_since = now
        self._above_since = self._below_since = None
        self._end_when_idle = None

    def _open_session(
        self,
        badge: str | None,
        member: int | None,
        supervisor: int | None,
        now: float,
        wall: int,
        *,
        limit: int | None,
        decided_by: DecidedBy,
    ) -> list[Action]:
        self._start_session(badge, member, supervisor, now, limit)
        # Power first: the member is waiting at the machine.
        return [
            SwitchOn(),
            *self._settle(wall),
            Emit(self._event(EventKind.SESSION_STARTED, now, wall, decided_by=decided_by)),
        ]

    def _hand_over(
        self, badge: str, reply: AccessReply, by: DecidedBy, now: float, wall: int
    ) -> list[Action]:
        """The trainer's session ends and the member's begins, on a machine that stays powered."""
        ended = self._event(EventKind.SESSION_ENDED, now, wall, EndReason.HANDOVER)
        self._start_session(badge, reply.member_id, reply.supervisor_id, now, reply.max_minutes)
        return [
            Emit(ended),
            *self._settle(wall),
            Emit(self._event(EventKind.SESSION_STARTED, now, wall, decided_by=by)),
        ]

    def _start_running(self, since: float, now: float, wall: int) -> list[Action]:
        # Running time is counted from the first sample above the threshold, not from
        # when the debounce confirmed it: the member pays for what the machine did.
        assert self._session is not None
        self._session.start_running(since)
        self._state = Running
        self._above_since = self._below_since = None
        return [*self._settle(wall), Emit(self._event(EventKind.RUNNING_STARTED, now, wall))]

    def _stop_running(self, since: float, now: float, wall: int) -> list[Action]:
        assert self._session is not None
        self._session.stop_running(since)
        self._state = Unlocked
        self._idle_since = since
        self._above_since = self._below_since = None
        return [*self._settle(wall), Emit(self._event(EventKind.RUNNING_STOPPED, now, wall))]

    def _end_or_defer(self, reason: EndReason, now: float, wall: int) -> list[Action]:
        # Never cut power to a machine drawing current (a seam, a print): wait for idle.
        if self._state is Unlocked and self._above_since is None:
            return self._end_session(reason, now, wall)
        self._defer_end(reason, now)
        return []

    def _end_session(self, reason: EndReason, now: float, wall: int) -> list[Action]:
        event = self._event(EventKind.SESSION_ENDED, now, wall, reason)
        self._session = None
        self._state = Locked
        self._end_when_idle = None
        self._above_since = self._below_since = None
        return [SwitchOff(), Emit(event), *self._settle(wall)]

    def _event(
        self,
        kind: EventKind,
        now: float,
        wall: int,
        end_reason: EndReason | None = None,
        decided_by: DecidedBy | None = None,
    ) -> SessionEvent:
        assert self._session is not None
        return self._session.event(kind, now, wall, end_reason, decided_by)

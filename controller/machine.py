"""One machine's interlock: who may use it now, and for how long it ran.

This is a pure state machine. It does no I/O and reads no clock: every input
carries ``now_mono`` (monotonic seconds) and ``now_wall_ms`` (epoch ms), and
every input returns the list of actions (:mod:`controller.actions`) the
gateway must carry out, in order. That keeps every rule here testable with a
fake clock, and the gateway the only place that touches relays, lights, the
journal and the broker.

States: locked -> authorising -> unlocked (idle) <-> running -> locked.

Supervision and certification at the machine (:mod:`controller.supervision`)
add two paths that keep the power on: a trainer's session handed over to a
member tapped within the supervision window (never while the machine draws
current), and a trainer certifying a refused member with a confirming tap or
the machine's button.

Calibration and energy are in :mod:`controller.metering`; a prepaid member's
limit (``AccessReply.max_minutes``) ends the session like a deferred lock:
once reached, as soon as the machine is idle, never while it draws current
(unless the machine has a hard limit, :attr:`MachineRules.hard_limit_s`).

Offline (:mod:`controller.offline`): when the server does not answer in time, or
while it is known to be out of reach (:attr:`Machine.server_reachable`), the
injected ``offline`` judge answers instead, and the session records
``decided_by = "cache"``.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from controller.actions import (
    Action,
    Emit,
    EndReason,
    PublishState,
    SendCertify,
    SendRequest,
    SessionEvent,
    Show,
    SwitchOff,
    SwitchOn,
)
from controller.hardware.interfaces import Signal
from controller.rules import MachineRules
from controller.session import Session
from controller.supervision import Supervision
from protocol.messages import (
    AccessReply,
    AccessRequest,
    CertifyReply,
    DecidedBy,
    EventKind,
    MachineState,
    MachineStateName,
    Reason,
)

__all__ = ["Machine", "MachineRules"]

Locked, Authorising, Unlocked, Running = (
    MachineStateName.LOCKED,
    MachineStateName.AUTHORISING,
    MachineStateName.UNLOCKED,
    MachineStateName.RUNNING,
)


_SIGNALS = {
    Locked: Signal.LOCKED,
    Authorising: Signal.AUTHORISING,
    Unlocked: Signal.GRANTED,
    Running: Signal.RUNNING,
}


@dataclass(slots=True)
class _Pending:
    request: AccessRequest
    deadline: float
    handover_of: str | None = None
    """The trainer's session this request may take over; None for a tap on a locked machine."""

    @property
    def badge(self) -> str:
        return self.request.badge

    @property
    def supervisor_badge(self) -> str | None:
        return self.request.supervisor_badge


OfflineJudge = Callable[[AccessRequest, int], AccessReply]
"""Answers a request without the server: (request, now_wall_ms) -> reply."""


def _new_id() -> str:
    return uuid.uuid4().hex


class Machine:
    """The interlock of machine ``machine_id``. Starts locked and powered off."""

    def __init__(
        self,
        machine_id: str,
        rules: MachineRules,
        *,
        new_id: Callable[[], str] = _new_id,
        offline: OfflineJudge | None = None,
    ) -> None:
        self.machine_id = machine_id
        self.rules = rules
        self._new_id = new_id
        self._offline = offline
        self.server_reachable = True
        """Set by the gateway: False while the broker link is down or the server has stopped
        answering; taps are then decided by the offline judge at once."""
        self._state = Locked
        self._pending: _Pending | None = None
        self._session: Session | None = None
        self._above_since: float | None = None  # current above running_above_a since (unlocked)
        self._below_since: float | None = None  # current below idle_below_a since (running)
        self._idle_since = 0.0
        self._end_when_idle: EndReason | None = None  # a lock or badge-out waiting for idleness
        self._end_asked_at = 0.0  # when _end_when_idle was set, for the hard limit
        self._display_until: float | None = None  # a refusal (or a certification) is shown until then
        self._now = float("-inf")
        self.supervision = Supervision(
            machine_id,
            window_s=rules.supervision_window_s,
            level=rules.certify_level,
            request_timeout_s=rules.request_timeout_s,
            new_id=new_id,
        )
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
    def asking(self) -> bool:
        """An access request waits for the server's answer (a tap on a locked machine, or a hand-over)."""
        return self._pending is not None

    @property
    def certifying(self) -> bool:
        """A certification at this machine is waiting for the server's answer."""
        return self.supervision.certifying is not None

    @property
    def seen_until(self) -> float:
        """The latest monotonic time an input has brought (time never goes back here)."""
        return self._now

    @property
    def signal(self) -> Signal:
        """What the lights show in this state (outside a passing refusal)."""
        return _SIGNALS[self._state]

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

    def start(self, now_mono: float, now_wall_ms: int) -> list[Action]:
        """The gateway has started: make sure the machine is off and say so."""
        self._clock(now_mono)
        return [SwitchOff(), Show(Signal.LOCKED), PublishState(self.snapshot(now_wall_ms))]

    def badge(self, uid: str, now_mono: float, now_wall_ms: int) -> list[Action]:
        """A badge was tapped on this machine's reader."""
        now, actions = self._timers(now_mono, now_wall_ms)
        uid = uid.upper()
        supervision = self.supervision
        session = self._session
        if self._pending is not None or supervision.certifying is not None:
            pass  # readers repeat a card held still; the pending decision stands
        elif supervision.confirms(uid, now):
            actions += self._certify(now, now_wall_ms)
        elif self._state is Locked:
            actions += self._ask(uid, supervision.supervisor_for(uid, now), None, now, now_wall_ms)
        elif session is not None and session.badge == uid:
            actions += self._end_or_defer(EndReason.BADGE_OUT, now, now_wall_ms)
        elif session is not None and self._hands_over(session, uid, now):
            actions += self._ask(uid, session.badge, session.session_id, now, now_wall_ms)
        else:
            # Someone else's badge while the machine is in use: refused here, the server is not asked.
            actions += self._deny(Reason.MACHINE_IN_USE, now)
        return actions

    def reply(self, reply: AccessReply, now_mono: float, now_wall_ms: int) -> list[Action]:
        """The server's decision. Only the answer to the pending request counts."""
        now, actions = self._timers(now_mono, now_wall_ms)
        pending = self._pending
        if pending is None or reply.request_id != pending.request.request_id:
            return actions  # late (after a timeout or an offline decision), duplicate or foreign: harmless
        return actions + self._decided(pending, reply, DecidedBy.SERVER, now, now_wall_ms)

    def _decided(
        self, pending: _Pending, reply: AccessReply, by: DecidedBy, now: float, now_wall_ms: int
    ) -> list[Action]:
        """Carry out the answer to ``pending``, the server's or the offline judge's."""
        actions: list[Action] = []
        self._pending = None
        if not reply.granted:
            self.supervision.refused(pending.badge, pending.supervisor_badge, reply.reason, now)
            actions += self._deny(reply.reason, now)
            if pending.handover_of is None:
                self._state = Locked
                actions.append(PublishState(self.snapshot(now_wall_ms)))
            return actions  # a trainer's session goes on
        if pending.handover_of is not None and self.drawing:
            # It started drawing current while the server decided: never hand over mid-seam.
            return actions + self._deny(Reason.MACHINE_IN_USE, now)
        if reply.trainer:
            self.supervision.trainer_granted(pending.badge, now)
        if pending.handover_of is None:
            return actions + self._open_session(
                pending.badge,
                reply.member_id,
                reply.supervisor_id,
                now,
                now_wall_ms,
                limit=reply.max_minutes,
                decided_by=by,
            )
        return actions + self._hand_over(pending.badge, reply, by, now, now_wall_ms)

    def certify_reply(self, reply: CertifyReply, now_mono: float, now_wall_ms: int) -> list[Action]:
        """The server's answer to a certification at the machine. Only the pending one counts."""
        now, actions = self._timers(now_mono, now_wall_ms)
        outcome = self.supervision.answer(reply, now_wall_ms)
        if outcome is None:
            return actions
        if outcome.certified:
            return actions + self._flash(Signal.GRANTED, Reason.GRANTED, now)
        return actions + self._deny(outcome.reason, now)

    def button(self, now_mono: float, now_wall_ms: int) -> list[Action]:
        """The machine's button was pressed: it confirms a pending certification, and does nothing else."""
        now, actions = self._timers(now_mono, now_wall_ms)
        if self._pending is None:
            actions += self._certify(now, now_wall_ms)
        return actions

    def current(self, raw_amps: float, now_mono: float, now_wall_ms: int) -> list[Action]:
        """A current sample, as the sensor reads it (calibrated here). Also lets time pass, like :meth:`tick`."""
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

    def tick(self, now_mono: float, now_wall_ms: int) -> list[Action]:
        """Time passes: request timeouts, idle timeouts, the end of a refusal display."""
        return self._timers(now_mono, now_wall_ms)[1]

    def lock_command(self, now_mono: float, now_wall_ms: int) -> list[Action]:
        """The server asks to lock: at once if idle, else as soon as the machine is idle."""
        now, actions = self._timers(now_mono, now_wall_ms)
        self.supervision.forget()  # the staff close the machine: nobody supervises there any more
        if self._state is Authorising:
            self._pending = None  # its reply, if it comes, will be ignored
            self._state = Locked
            actions += self._settle(now_wall_ms)
        elif self._state in (Unlocked, Running):
            actions += self._end_or_defer(EndReason.LOCK_COMMAND, now, now_wall_ms)
        return actions

    def unlock_command(self, now_mono: float, now_wall_ms: int) -> list[Action]:
        """The server opens a session itself (a trainer at the desk): power the machine."""
        now, actions = self._timers(now_mono, now_wall_ms)
        if self._state in (Locked, Authorising):
            self._pending = None
            actions += self._open_session(
                None, None, None, now, now_wall_ms, limit=None, decided_by=DecidedBy.SERVER
            )
        else:
            self._end_when_idle = None  # the server wants it powered: forget a deferred lock
        return actions

    def shutdown(self, now_mono: float, now_wall_ms: int) -> list[Action]:
        """The gateway stops: close the session's books; power off unless it is drawing current."""
        now = self._clock(now_mono)
        self._pending = None
        self.supervision.forget(in_flight=True)
        drawing = self.drawing
        actions: list[Action] = []
        if self._session is not None:
            actions.append(
                Emit(self._event(EventKind.SESSION_ENDED, now, now_wall_ms, EndReason.GATEWAY_STOPPED))
            )
        self._session = None
        self._state = Locked
        self._end_when_idle = None
        if not drawing:
            actions += [SwitchOff(), Show(Signal.LOCKED), PublishState(self.snapshot(now_wall_ms))]
        return actions

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
        actions: list[Action] = []
        if self._pending is not None and now >= self._pending.deadline:
            actions += self._without_server(self._pending, now, now_wall_ms)
        if self.supervision.expire(now, now_wall_ms) is not None:
            actions += self._deny(Reason.SERVER_UNREACHABLE, now)
        if self._display_until is not None and now >= self._display_until:
            self._display_until = None
            actions.append(Show(_SIGNALS[self._state]))
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
        return now, actions

    def _without_server(self, pending: _Pending, now: float, wall: int) -> list[Action]:
        """No answer from the server: the offline judge decides, or the tap is refused."""
        if self._offline is not None:
            return self._decided(pending, self._offline(pending.request, wall), DecidedBy.CACHE, now, wall)
        self._pending = None
        actions = self._deny(Reason.SERVER_UNREACHABLE, now)
        if pending.handover_of is None:
            self._state = Locked
            actions.append(PublishState(self.snapshot(wall)))
        return actions

    def _defer_end(self, reason: EndReason, now: float) -> None:
        if self._end_when_idle is None:
            self._end_when_idle = reason
            self._end_asked_at = now

    def _hands_over(self, session: Session, uid: str, now: float) -> bool:
        """May ``uid``, tapped during ``session``, be asked about as the trainer's trainee?"""
        trainer = self.supervision.trainer(now)
        return (
            trainer is not None
            and session.badge == trainer.badge
            and uid != trainer.badge
            and self._end_when_idle is None
            and not self.drawing
        )

    def _ask(
        self, uid: str, supervisor: str | None, handover_of: str | None, now: float, wall: int
    ) -> list[Action]:
        request = AccessRequest(
            request_id=self._new_id(),
            machine=self.machine_id,
            badge=uid,
            sent_at_ms=wall,
            expires_at_ms=wall + round(self.rules.request_timeout_s * 1000),
            supervisor_badge=supervisor,
        )
        pending = self._pending = _Pending(request, now + self.rules.request_timeout_s, handover_of)
        if not self.server_reachable and self._offline is not None:
            # Known to be out of reach: no point waiting for the timeout.
            if handover_of is None:
                self._state = Authorising
            return self._without_server(pending, now, wall)
        if handover_of is not None:
            # The trainer's session stays as it is (state, power) while the server decides.
            self._display_until = None
            return [SendRequest(request), Show(Signal.AUTHORISING)]
        self._state = Authorising
        return [SendRequest(request), *self._settle(wall)]

    def _certify(self, now: float, wall: int) -> list[Action]:
        request = self.supervision.certify(now, wall)
        if request is None:
            return []
        self._display_until = None  # "authorising" stays until the answer
        return [SendCertify(request), Show(Signal.AUTHORISING)]

    def _settle(self, now_wall_ms: int) -> list[Action]:
        """Show and publish the state just entered."""
        self._display_until = None
        return [Show(_SIGNALS[self._state]), PublishState(self.snapshot(now_wall_ms))]

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
        self._pending = None  # a hand-over asked for has nothing left to take over
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

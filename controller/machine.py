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

The session once granted (power, sensed running, the books, and when it ends) is
:class:`controller.usage.UsageInterlock`'s, which :class:`Machine` builds on;
calibration and energy are in :mod:`controller.metering`. A prepaid member's
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
    Show,
    SwitchOff,
)
from controller.hardware.interfaces import Signal
from controller.rules import MachineRules
from controller.session import Session
from controller.supervision import Supervision
from controller.usage import Authorising, Locked, Running, Unlocked, UsageInterlock
from protocol.messages import (
    AccessReply,
    AccessRequest,
    CertifyReply,
    DecidedBy,
    EventKind,
    Reason,
)

__all__ = ["Machine", "MachineRules"]


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


class Machine(UsageInterlock):
    """The interlock of machine ``machine_id``. Starts locked and powered off."""

    def __init__(
        self,
        machine_id: str,
        rules: MachineRules,
        *,
        new_id: Callable[[], str] = _new_id,
        offline: OfflineJudge | None = None,
    ) -> None:
        super().__init__(machine_id, rules, new_id=new_id)
        self._offline = offline
        self.server_reachable = True
        """Set by the gateway: False while the broker link is down or the server has stopped
        answering; taps are then decided by the offline judge at once."""
        self._pending: _Pending | None = None
        self.supervision = Supervision(
            machine_id,
            window_s=rules.supervision_window_s,
            level=rules.certify_level,
            request_timeout_s=rules.request_timeout_s,
            new_id=new_id,
        )

    # What the gateway and the demo can read, besides the session (UsageInterlock).

    @property
    def asking(self) -> bool:
        """An access request waits for the server's answer (a tap on a locked machine, or a hand-over)."""
        return self._pending is not None

    @property
    def certifying(self) -> bool:
        """A certification at this machine is waiting for the server's answer."""
        return self.supervision.certifying is not None

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

    # Rules.

    def _timers(self, now_mono: float, now_wall_ms: int) -> tuple[float, list[Action]]:
        now = self._clock(now_mono)
        actions: list[Action] = []
        if self._pending is not None and now >= self._pending.deadline:
            actions += self._without_server(self._pending, now, now_wall_ms)
        if self.supervision.expire(now, now_wall_ms) is not None:
            actions += self._deny(Reason.SERVER_UNREACHABLE, now)
        return now, actions + self._usage_timers(now, now_wall_ms)

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

    def _end_session(self, reason: EndReason, now: float, wall: int) -> list[Action]:
        self._pending = None  # a hand-over asked for has nothing left to take over
        return super()._end_session(reason, now, wall)

"""A test bench for the interlock state machine: a machine, the time it lives at, and helpers."""

from __future__ import annotations

import itertools

from controller.actions import Action, Emit, SendCertify, SendRequest, SessionEvent, Show
from controller.machine import Machine, MachineRules, OfflineJudge
from protocol.messages import (
    AccessReply,
    AccessRequest,
    CertifyReply,
    CertifyRequest,
    MachineStateName,
    Reason,
)

LOCKED, AUTHORISING, UNLOCKED, RUNNING = (
    MachineStateName.LOCKED,
    MachineStateName.AUTHORISING,
    MachineStateName.UNLOCKED,
    MachineStateName.RUNNING,
)
RULES = MachineRules(
    idle_timeout_s=60,
    running_above_a=1.0,
    idle_below_a=0.5,
    running_after_s=2,
    idle_after_s=3,
    request_timeout_s=0.5,
    denied_display_s=3,
)
BADGE = "04A1B2C3"
OTHER = "0BADCAFE"
TRAINER = "7EAC4E55"
TRAINER_ID = 3
WALL0 = 1_700_000_000_000


def wall(t: float) -> int:
    return WALL0 + round(t * 1000)


class Bench:
    """A machine and the time it lives at; every input is given at ``self.t``."""

    def __init__(self, rules: MachineRules = RULES, *, offline: OfflineJudge | None = None) -> None:
        numbers = itertools.count(1)
        self.machine = Machine("sew-1", rules, new_id=lambda: f"id-{next(numbers)}", offline=offline)
        self.t = 100.0
        self.last_request_id = "none-yet"
        self.requests: list[AccessRequest] = []
        self.certify_requests: list[CertifyRequest] = []

    def at(self, t: float) -> Bench:
        self.t = t
        return self

    def _noted(self, actions: list[Action]) -> list[Action]:
        for action in actions:
            if isinstance(action, SendRequest):
                self.last_request_id = action.request.request_id
                self.requests.append(action.request)
            elif isinstance(action, SendCertify):
                self.certify_requests.append(action.request)
        return actions

    def badge(self, uid: str = BADGE) -> list[Action]:
        return self._noted(self.machine.badge(uid, self.t, wall(self.t)))

    def press(self) -> list[Action]:
        return self._noted(self.machine.button(self.t, wall(self.t)))

    def reply(
        self,
        granted: bool = True,
        reason: Reason = Reason.GRANTED,
        request_id: str = "",
        *,
        trainer: bool = False,
        member_id: int | None = None,
        supervisor_id: int | None = None,
        max_minutes: int | None = None,
    ) -> list[Action]:
        answer = AccessReply(
            request_id=request_id or self.last_request_id,
            machine="sew-1",
            badge=self.requests[-1].badge if self.requests else BADGE,
            granted=granted,
            reason=reason if not granted else Reason.GRANTED,
            member_id=member_id if member_id is not None else (7 if granted else None),
            trainer=trainer,
            supervisor_id=supervisor_id,
            max_minutes=max_minutes,
        )
        return self.machine.reply(answer, self.t, wall(self.t))

    def certify_reply(
        self, certified: bool = True, reason: Reason = Reason.GRANTED, request_id: str = ""
    ) -> list[Action]:
        request = self.certify_requests[-1]
        answer = CertifyReply(
            request_id=request_id or request.request_id,
            machine="sew-1",
            member_badge=request.member_badge,
            certified=certified,
            reason=reason if not certified else Reason.GRANTED,
            member_id=7,
            member_name="Camille",
            skills=["industrial-sewing"],
        )
        return self.machine.certify_reply(answer, self.t, wall(self.t))

    def trainer_in(self) -> list[Action]:
        """The trainer taps and is granted, as a trainer for this machine."""
        self.badge(TRAINER)
        return self.reply(trainer=True, member_id=TRAINER_ID)

    def current(self, amps: float) -> list[Action]:
        return self.machine.current(amps, self.t, wall(self.t))

    def tick(self) -> list[Action]:
        return self.machine.tick(self.t, wall(self.t))

    def lock(self) -> list[Action]:
        return self.machine.lock_command(self.t, wall(self.t))

    def unlock(self) -> list[Action]:
        return self.machine.unlock_command(self.t, wall(self.t))

    def shutdown(self) -> list[Action]:
        return self.machine.shutdown(self.t, wall(self.t))

    def granted(self, max_minutes: int | None = None) -> list[Action]:
        """Tap and be granted at the current time (for ``max_minutes`` if prepaid)."""
        self.badge()
        return self.reply(max_minutes=max_minutes)

    @property
    def state(self) -> MachineStateName:
        return self.machine.state


def events(actions: list[Action]) -> list[SessionEvent]:
    return [action.event for action in actions if isinstance(action, Emit)]


def only_event(actions: list[Action]) -> SessionEvent:
    found = events(actions)
    assert len(found) == 1, actions
    return found[0]


def shows(actions: list[Action]) -> list[Show]:
    return [action for action in actions if isinstance(action, Show)]


def durations(event: SessionEvent) -> tuple[int, int, int]:
    return event.unlocked_ms, event.running_ms, event.idle_ms

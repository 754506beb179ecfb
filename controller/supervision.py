"""Who supervises at one machine, who is waiting to be certified there, and the certification in flight.

Pure, like :mod:`controller.machine`, which owns one of these per machine:
times are the machine's monotonic seconds, and nothing here does I/O.

The server decides who is a trainer and who may use the machine under
supervision; the gateway only remembers what it was told, for a while:

- a badge granted with ``trainer: true`` is *the trainer present* for the
  supervision window (``supervision_window_s``, 300 s by default). A badge
  tapped next on the machine within the window is asked about with the
  trainer's badge as ``supervisor_badge``;
- a badge refused, under such a supervisor, because its holder lacks the
  training (``not_certified``, ``certification_expired``,
  ``supervision_required``) becomes *the trainee* for the window;
- the trainer's next tap (or the machine's button) then certifies the trainee:
  one CertifyRequest, answered or timed out like an access request.
"""

from collections.abc import Callable
from dataclasses import dataclass

from controller.actions import CertifyOutcome
from protocol.messages import CertificationLevel, CertifyReply, CertifyRequest, Reason

TRAINEE_REASONS = frozenset({Reason.NOT_CERTIFIED, Reason.CERTIFICATION_EXPIRED, Reason.SUPERVISION_REQUIRED})
"""Refusals that a certification at the machine can answer."""


@dataclass(frozen=True, slots=True)
class Trainer:
    badge: str
    until: float
    """The end of the supervision window (monotonic seconds, inclusive)."""


@dataclass(frozen=True, slots=True)
class Trainee:
    badge: str
    trainer_badge: str
    """The trainer whose presence the refused request carried: only they confirm."""
    until: float


@dataclass(frozen=True, slots=True)
class _InFlight:
    request: CertifyRequest
    deadline: float


class Supervision:
    """The supervision memory of one machine."""

    def __init__(
        self,
        machine_id: str,
        *,
        window_s: float,
        level: CertificationLevel,
        request_timeout_s: float,
        new_id: Callable[[], str],
    ) -> None:
        self.machine_id = machine_id
        self.window_s = window_s
        self.level = level
        self.request_timeout_s = request_timeout_s
        self._new_id = new_id
        self._trainer: Trainer | None = None
        self._trainee: Trainee | None = None
        self._in_flight: _InFlight | None = None
        self.last_outcome: CertifyOutcome | None = None

    # What the machine (and through it the gateway and the demo) can read.

    def trainer(self, now: float) -> Trainer | None:
        """The trainer present at ``now``, if their window is still open."""
        # Read-only (an expired one is left in place), so other threads may ask too.
        trainer = self._trainer
        return trainer if trainer is not None and now <= trainer.until else None

    def trainee(self, now: float) -> Trainee | None:
        """The member waiting for a certification at ``now``, if any."""
        trainee = self._trainee
        return trainee if trainee is not None and now <= trainee.until else None

    @property
    def certifying(self) -> CertifyRequest | None:
        """The CertifyRequest waiting for its reply."""
        return None if self._in_flight is None else self._in_flight.request

    # What happened at the machine.

    def supervisor_for(self, badge: str, now: float) -> str | None:
        """The ``supervisor_badge`` to send with a request for ``badge`` tapped at ``now``."""
        trainer = self.trainer(now)
        return None if trainer is None or trainer.badge == badge else trainer.badge

    def trainer_granted(self, badge: str, now: float) -> None:
        """The server granted ``badge`` on this machine and said its holder is a trainer for it."""
        if self.window_s > 0:
            self._trainer = Trainer(badge, now + self.window_s)

    def refused(self, badge: str, supervisor_badge: str | None, reason: Reason, now: float) -> None:
        """The server refused ``badge``; under a supervisor, for lack of training, it becomes the trainee."""
        if supervisor_badge is not None and reason in TRAINEE_REASONS and self.window_s > 0:
            self._trainee = Trainee(badge, supervisor_badge, now + self.window_s)

    def confirms(self, badge: str, now: float) -> bool:
        """Is a tap of ``badge`` the trainer's confirming tap for the trainee?"""
        trainee = self.trainee(now)
        return trainee is not None and trainee.trainer_badge == badge and self._in_flight is None

    def certify(self, now: float, now_wall_ms: int) -> CertifyRequest | None:
        """Ask the server to certify the trainee; None when there is nobody to certify (or one in flight)."""
        trainee = self.trainee(now)
        if trainee is None or self._in_flight is not None:
            return None
        request = CertifyRequest(
            request_id=self._new_id(),
            machine=self.machine_id,
            trainer_badge=trainee.trainer_badge,
            member_badge=trainee.badge,
            level=self.level,
            sent_at_ms=now_wall_ms,
            expires_at_ms=now_wall_ms + round(self.request_timeout_s * 1000),
        )
        # One confirmation, one request: whatever the answer, the trainer's next tap is theirs again.
        self._trainee = None
        self._in_flight = _InFlight(request, now + self.request_timeout_s)
        return request

    def answer(self, reply: CertifyReply, now_wall_ms: int) -> CertifyOutcome | None:
        """The server's answer; only the one to the request in flight counts."""
        flight = self._in_flight
        if flight is None or reply.request_id != flight.request.request_id:
            return None  # late (after a timeout), duplicate or foreign: harmless
        self._in_flight = None
        request = flight.request
        self.last_outcome = CertifyOutcome(
            request_id=request.request_id,
            trainer_badge=request.trainer_badge,
            member_badge=request.member_badge,
            level=request.level,
            certified=reply.certified,
            reason=reply.reason,
            at_ms=now_wall_ms,
            message=reply.message,
            member_id=reply.member_id,
            member_name=reply.member_name,
            skills=tuple(reply.skills),
        )
        return self.last_outcome

    def expire(self, now: float, now_wall_ms: int) -> CertifyOutcome | None:
        """No answer in time: the certification is refused as ``server_unreachable``."""
        flight = self._in_flight
        if flight is None or now < flight.deadline:
            return None
        self._in_flight = None
        request = flight.request
        self.last_outcome = CertifyOutcome(
            request_id=request.request_id,
            trainer_badge=request.trainer_badge,
            member_badge=request.member_badge,
            level=request.level,
            certified=False,
            reason=Reason.SERVER_UNREACHABLE,
            at_ms=now_wall_ms,
        )
        return self.last_outcome

    def forget(self, *, in_flight: bool = False) -> None:
        """Nobody supervises any more (a lock, a stop); ``in_flight`` also drops the request in flight."""
        self._trainer = None
        self._trainee = None
        if in_flight:
            self._in_flight = None

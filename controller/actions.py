"""What a machine's interlock asks the gateway to do, and the events it records.

:class:`controller.machine.Machine` returns a list of these for every input;
the gateway carries them out in order.
"""

from dataclasses import asdict, dataclass
from enum import StrEnum

from controller.hardware.interfaces import Signal
from protocol.messages import (
    AccessRequest,
    CertificationLevel,
    CertifyRequest,
    DecidedBy,
    EventKind,
    MachineState,
    Reason,
    UsageEvent,
)


class EndReason(StrEnum):
    """Why a usage session ended (``UsageEvent.end_reason``)."""

    IDLE_TIMEOUT = "idle_timeout"
    BADGE_OUT = "badge_out"
    LOCK_COMMAND = "lock_command"
    GATEWAY_STOPPED = "gateway_stopped"
    HANDOVER = "handover"  # a trainer handed the powered machine over to a member
    PREPAID_LIMIT = "prepaid_limit"  # the unlocked time the balance pays for ran out (once idle)
    HARD_LIMIT = "hard_limit"  # a deferred end waited its machine's hard limit: power cut while drawing
    GATEWAY_RESTART = "gateway_restart"  # the gateway died mid-session: closed from its last checkpoint


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A :class:`UsageEvent` before the journal gives it its ``seq``."""

    session_id: str
    machine: str
    kind: EventKind
    at_ms: int
    badge: str | None = None
    member_id: int | None = None
    decided_by: DecidedBy | None = None
    supervisor_id: int | None = None
    unlocked_ms: int = 0
    running_ms: int = 0
    idle_ms: int = 0
    end_reason: str | None = None
    energy_wh: float | None = None

    def with_seq(self, seq: int) -> UsageEvent:
        return UsageEvent(seq=seq, **asdict(self))


@dataclass(frozen=True, slots=True)
class CertifyOutcome:
    """How a certification at the machine ended: the server's answer, or the gateway's timeout."""

    request_id: str
    trainer_badge: str
    member_badge: str
    level: CertificationLevel
    certified: bool
    reason: Reason
    at_ms: int
    message: str = ""
    member_id: int | None = None
    member_name: str | None = None
    skills: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SwitchOn:
    pass


@dataclass(frozen=True, slots=True)
class SwitchOff:
    pass


@dataclass(frozen=True, slots=True)
class Show:
    signal: Signal
    reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class SendRequest:
    request: AccessRequest


@dataclass(frozen=True, slots=True)
class SendCertify:
    request: CertifyRequest


@dataclass(frozen=True, slots=True)
class Emit:
    event: SessionEvent


@dataclass(frozen=True, slots=True)
class PublishState:
    state: MachineState


Action = SwitchOn | SwitchOff | Show | SendRequest | SendCertify | Emit | PublishState

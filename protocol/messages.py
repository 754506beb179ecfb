"""Typed payloads: one model per channel, JSON on the wire.

Times on the wire are integers, milliseconds since the Unix epoch (UTC), named
``*_ms``; durations are integer milliseconds measured on the gateway's
monotonic clock. Unknown fields are ignored, so a newer peer may add fields
without breaking an older one; a missing or ill-typed field is an error.
"""

from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from protocol.errors import BadPayload
from protocol.ids import Ident

MAX_PAYLOAD_BYTES = 4096
"""Larger payloads are refused before they are parsed."""

Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""A request, command or session id: letters, digits, '_' and '-', up to 64."""

BadgeUid = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{4,32}$", to_upper=True)]
"""A badge UID in hex (EM4100: 10 digits, MIFARE: 8 or 14), upper-cased."""

INT64_MAX = 2**63 - 1
"""Every integer fits a signed 64-bit column or a C ``int64_t``."""

Millis = Annotated[int, Field(ge=0, le=INT64_MAX)]
Counter = Annotated[int, Field(ge=1, le=INT64_MAX)]
MemberId = Annotated[int, Field(ge=1, le=INT64_MAX)]


class Message(BaseModel):
    # Strict: "5" is not an integer and 1 is not true; a peer must send the right types.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Reason(StrEnum):
    """Why an access request was granted or refused, as a stable code."""

    GRANTED = "granted"
    UNKNOWN_BADGE = "unknown_badge"
    BADGE_DISABLED = "badge_disabled"
    MEMBER_INACTIVE = "member_inactive"
    NOT_CERTIFIED = "not_certified"
    CERTIFICATION_EXPIRED = "certification_expired"
    MACHINE_LOCKED_OUT = "machine_locked_out"
    UNKNOWN_MACHINE = "unknown_machine"
    UNKNOWN_GATEWAY = "unknown_gateway"
    REQUEST_EXPIRED = "request_expired"
    BAD_REQUEST = "bad_request"
    SUPERVISION_REQUIRED = "supervision_required"  # certified "supervised", and no trainer badged in
    INSUFFICIENT_BALANCE = "insufficient_balance"  # prepaid member below the minimum balance
    # Refusals of a certification at the machine (CertifyReply):
    NOT_A_TRAINER = "not_a_trainer"  # the first badge is not a trainer for the machine's skills
    SELF_CERTIFICATION = "self_certification"  # a trainer cannot certify themself
    PREREQUISITE_MISSING = "prerequisite_missing"  # a prerequisite skill must be held first
    # The machine asks for a second factor, and the member has not confirmed in the web app:
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    # Said by the gateway itself, never sent by the server:
    SERVER_UNREACHABLE = "server_unreachable"  # no answer within the request timeout
    MACHINE_IN_USE = "machine_in_use"  # another member's session is open on the machine


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"  # said by the gateway on a clean shutdown
    LOST = "lost"  # said by the broker, as the gateway's last will


class GatewayStatus(Message):
    """Retained on ``.../status``; the last will carries ``lost`` and the same boot."""

    state: GatewayState
    boot: Counter
    software: str = Field(default="", max_length=64)
    # 32 ids of 64 characters still fit in MAX_PAYLOAD_BYTES with the other fields.
    machines: list[Ident] = Field(default_factory=list, max_length=32)
    at_ms: Millis
    backlog: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    """Usage events journaled and not yet acknowledged by the server."""


class MachineStateName(StrEnum):
    LOCKED = "locked"
    AUTHORISING = "authorising"
    UNLOCKED = "unlocked"  # powered, not drawing current: idle
    RUNNING = "running"  # powered and drawing current


class MachineState(Message):
    """Retained on ``.../machine/<machine>``: what a machine is doing now."""

    machine: Ident
    state: MachineStateName
    session_id: Token | None = None
    member_id: MemberId | None = None
    at_ms: Millis


class AccessRequest(Message):
    """A badge tapped on a machine: may its holder use it?

    ``supervisor_badge`` is the badge of a trainer who was granted this machine
    within the gateway's supervision window just before: a member certified
    at the ``supervised`` level may use the machine only then.
    """

    request_id: Token
    machine: Ident
    badge: BadgeUid
    sent_at_ms: Millis
    expires_at_ms: Millis
    supervisor_badge: BadgeUid | None = None


class AccessReply(Message):
    """The server's answer, echoing ``request_id``; ``reason`` says why."""

    request_id: Token
    machine: Ident
    badge: BadgeUid
    granted: bool
    reason: Reason
    message: str = Field(default="", max_length=200)
    member_id: MemberId | None = None
    member_name: str | None = Field(default=None, max_length=120)
    trainer: bool = False
    """The holder is a trainer for every skill the machine requires: a badge tapped
    next on this machine within the supervision window is asked about with this
    badge as ``supervisor_badge``, and the holder may certify at the machine."""
    supervisor_id: MemberId | None = None
    """Granted under supervision: the supervising trainer's member id."""
    max_minutes: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    """Granted to a prepaid member: the session ends (once the machine is idle)
    after this many unlocked minutes, what the balance pays for. Absent: no limit."""


class EventKind(StrEnum):
    SESSION_STARTED = "session_started"
    RUNNING_STARTED = "running_started"
    RUNNING_STOPPED = "running_stopped"
    SESSION_ENDED = "session_ended"


class DecidedBy(StrEnum):
    SERVER = "server"
    CACHE = "cache"


class UsageEvent(Message):
    """Something that happened in a usage session, journaled on the gateway.

    ``seq`` is strictly increasing per gateway, across reboots; the server
    applies each (gateway, seq) once. The duration fields are the session's
    totals so far (not increments), so applying an older event after a newer
    one changes nothing.
    """

    seq: Counter
    session_id: Token
    machine: Ident
    kind: EventKind
    at_ms: Millis
    badge: BadgeUid | None = None
    member_id: MemberId | None = None
    decided_by: DecidedBy | None = None
    supervisor_id: MemberId | None = None
    unlocked_ms: Millis = 0
    running_ms: Millis = 0
    idle_ms: Millis = 0
    energy_wh: Annotated[float, Field(ge=0, le=1e12)] | None = None
    """Energy drawn in the session so far, where the gateway knows the voltage."""
    end_reason: str | None = Field(default=None, max_length=40)


class CertificationLevel(StrEnum):
    SUPERVISED = "supervised"  # may use the machine while a trainer is present
    AUTONOMOUS = "autonomous"
    TRAINER = "trainer"  # may also supervise and certify others


class CertifyRequest(Message):
    """A trainer certifies a member at the machine, for the skills the machine requires.

    Sent after the trainer's badge, the member's badge, then the trainer's
    confirming tap (or button) on the same machine.
    """

    request_id: Token
    machine: Ident
    trainer_badge: BadgeUid
    member_badge: BadgeUid
    level: CertificationLevel = CertificationLevel.AUTONOMOUS
    sent_at_ms: Millis
    expires_at_ms: Millis


class CertifyReply(Message):
    """The server's answer to a CertifyRequest, echoing ``request_id``."""

    request_id: Token
    machine: Ident
    member_badge: BadgeUid
    certified: bool
    reason: Reason
    message: str = Field(default="", max_length=200)
    member_id: MemberId | None = None
    member_name: str | None = Field(default=None, max_length=120)
    # 16 ids of 64 characters leave room for the message and the name within MAX_PAYLOAD_BYTES.
    skills: list[Ident] = Field(default_factory=list, max_length=16)


class EventAck(Message):
    """The server has durably applied (or refused for good) event ``seq``."""

    seq: Counter
    ok: bool = True
    error: str | None = Field(default=None, max_length=200)


class CommandAction(StrEnum):
    LOCK = "lock"  # end the session once the machine is idle
    UNLOCK = "unlock"  # power the machine for a session opened by the server
    REFRESH = "refresh"  # re-publish status and machine states


class Command(Message):
    """An order to a gateway. Never retained; a late or repeated one is dropped."""

    command_id: Token
    action: CommandAction
    machine: Ident | None = None
    issued_at_ms: Millis
    expires_at_ms: Millis
    reason: str | None = Field(default=None, max_length=200)


class Telemetry(Message):
    """A sample of a machine's current, at most once (QoS 0)."""

    machine: Ident
    at_ms: Millis
    current_a: Annotated[float, Field(ge=0, le=1000)]
    running: bool
    power_w: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    state: MachineStateName | None = None


M = TypeVar("M", bound=Message)


def encode(message: Message) -> bytes:
    """The compact JSON bytes of ``message``, with absent optional fields left out."""
    return message.model_dump_json(exclude_none=True).encode()


def decode(model: type[M], payload: bytes | bytearray, *, limit: int = MAX_PAYLOAD_BYTES) -> M:
    """Parse ``payload`` as ``model``, or raise :class:`BadPayload` saying why.

    ``limit`` is the largest payload accepted; only the allowlist channel raises it.
    """
    if len(payload) > limit:
        raise BadPayload(f"payload of {len(payload)} bytes is over {limit}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}"
            for e in error.errors(include_url=False)[:3]
        )
        raise BadPayload(f"invalid {model.__name__}: {problems}") from None

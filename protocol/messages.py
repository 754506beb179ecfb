"""Typed payloads: one model per channel, JSON on the wire.

Times on the wire are integers, milliseconds since the Unix epoch (UTC), named
``*_ms``; durations are integer milliseconds measured on the gateway's
monotonic clock. Unknown fields are ignored, so a newer peer may add fields
without breaking an older one; a missing or ill-typed field is an error.
"""

import copy
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import msgspec

from protocol.errors import BadPayload
from protocol.ids import Ident, whole_text

MAX_PAYLOAD_BYTES = 4096
"""Larger payloads are refused before they are parsed."""

TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # noqa: S105 - a request id's pattern, not a secret
BADGE_PATTERN = r"^[0-9A-Fa-f]{4,32}$"

Token = Annotated[str, msgspec.Meta(pattern=whole_text(TOKEN_PATTERN))]
"""A request, command or session id: letters, digits, '_' and '-', up to 64."""

BadgeUid = Annotated[str, msgspec.Meta(pattern=whole_text(BADGE_PATTERN))]
"""A badge UID in hex (EM4100: 10 digits, MIFARE: 8 or 14), upper-cased by the message holding it."""

INT64_MAX = 2**63 - 1
"""Every integer fits a signed 64-bit column or a C ``int64_t``."""

Millis = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Counter = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]
MemberId = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]


T = TypeVar("T")


def written(default: T) -> T:
    """A default that :func:`encode` writes, as the contract's examples show (``"message":""``).

    Messages leave out the fields that hold their plain default (msgspec's ``omit_defaults``),
    and every plain default here is None: an absent optional field is left out. A default
    made by a factory is always written: msgspec leaves out only an empty list, dict or set
    made by ``list``, ``dict`` or ``set`` themselves (tests/protocol/test_messages.py checks it).
    """
    return msgspec.field(default_factory=lambda: copy.copy(default))  # a new [] each time


def upper_case_badges(message: "Message", *names: str) -> None:
    # Badge UIDs are upper-cased by every receiver (docs/protocol.md, section 3), and by
    # every sender here, whichever way the message was made.
    for name in names:
        value = getattr(message, name)
        if isinstance(value, str) and not value.isupper():
            msgspec.structs.force_setattr(message, name, value.upper())


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A payload of the contract: immutable, made with keyword arguments.

    Decoding (:func:`decode`) checks every field: strict JSON types ("5" is not an
    integer and 1 is not true; a peer must send the right types), bounds and patterns.
    Unknown fields are ignored. Made in code, a message is checked when it is encoded.
    A message with a :data:`BadgeUid` field upper-cases it in its ``__post_init__``.
    """


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


class GatewayStatus(Message, frozen=True, kw_only=True):
    """Retained on ``.../status``; the last will carries ``lost`` and the same boot."""

    state: GatewayState
    boot: Counter
    software: Annotated[str, msgspec.Meta(max_length=64)] = written("")
    # 32 ids of 64 characters still fit in MAX_PAYLOAD_BYTES with the other fields.
    machines: Annotated[list[Ident], msgspec.Meta(max_length=32)] = written([])
    at_ms: Millis
    backlog: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] | None = None
    """Usage events journaled and not yet acknowledged by the server."""


class MachineStateName(StrEnum):
    LOCKED = "locked"
    AUTHORISING = "authorising"
    UNLOCKED = "unlocked"  # powered, not drawing current: idle
    RUNNING = "running"  # powered and drawing current


class MachineState(Message, frozen=True, kw_only=True):
    """Retained on ``.../machine/<machine>``: what a machine is doing now."""

    machine: Ident
    state: MachineStateName
    session_id: Token | None = None
    member_id: MemberId | None = None
    at_ms: Millis


class AccessRequest(Message, frozen=True, kw_only=True):
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

    def __post_init__(self) -> None:
        upper_case_badges(self, "badge", "supervisor_badge")


class AccessReply(Message, frozen=True, kw_only=True):
    """The server's answer, echoing ``request_id``; ``reason`` says why."""

    request_id: Token
    machine: Ident
    badge: BadgeUid
    granted: bool
    reason: Reason
    message: Annotated[str, msgspec.Meta(max_length=200)] = written("")
    member_id: MemberId | None = None
    member_name: Annotated[str, msgspec.Meta(max_length=120)] | None = None
    trainer: bool = written(False)
    """The holder is a trainer for every skill the machine requires: a badge tapped
    next on this machine within the supervision window is asked about with this
    badge as ``supervisor_badge``, and the holder may certify at the machine."""
    supervisor_id: MemberId | None = None
    """Granted under supervision: the supervising trainer's member id."""
    max_minutes: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] | None = None
    """Granted to a prepaid member: the session ends (once the machine is idle)
    after this many unlocked minutes, what the balance pays for. Absent: no limit."""

    def __post_init__(self) -> None:
        upper_case_badges(self, "badge")


class EventKind(StrEnum):
    SESSION_STARTED = "session_started"
    RUNNING_STARTED = "running_started"
    RUNNING_STOPPED = "running_stopped"
    SESSION_ENDED = "session_ended"


class DecidedBy(StrEnum):
    SERVER = "server"
    CACHE = "cache"


class UsageEvent(Message, frozen=True, kw_only=True):
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
    unlocked_ms: Millis = written(0)
    running_ms: Millis = written(0)
    idle_ms: Millis = written(0)
    energy_wh: Annotated[float, msgspec.Meta(ge=0, le=1e12)] | None = None
    """Energy drawn in the session so far, where the gateway knows the voltage."""
    end_reason: Annotated[str, msgspec.Meta(max_length=40)] | None = None

    def __post_init__(self) -> None:
        upper_case_badges(self, "badge")


class CertificationLevel(StrEnum):
    SUPERVISED = "supervised"  # may use the machine while a trainer is present
    AUTONOMOUS = "autonomous"
    TRAINER = "trainer"  # may also supervise and certify others


class CertifyRequest(Message, frozen=True, kw_only=True):
    """A trainer certifies a member at the machine, for the skills the machine requires.

    Sent after the trainer's badge, the member's badge, then the trainer's
    confirming tap (or button) on the same machine.
    """

    request_id: Token
    machine: Ident
    trainer_badge: BadgeUid
    member_badge: BadgeUid
    level: CertificationLevel = written(CertificationLevel.AUTONOMOUS)
    sent_at_ms: Millis
    expires_at_ms: Millis

    def __post_init__(self) -> None:
        upper_case_badges(self, "trainer_badge", "member_badge")


class CertifyReply(Message, frozen=True, kw_only=True):
    """The server's answer to a CertifyRequest, echoing ``request_id``."""

    request_id: Token
    machine: Ident
    member_badge: BadgeUid
    certified: bool
    reason: Reason
    message: Annotated[str, msgspec.Meta(max_length=200)] = written("")
    member_id: MemberId | None = None
    member_name: Annotated[str, msgspec.Meta(max_length=120)] | None = None
    # 16 ids of 64 characters leave room for the message and the name within MAX_PAYLOAD_BYTES.
    skills: Annotated[list[Ident], msgspec.Meta(max_length=16)] = written([])

    def __post_init__(self) -> None:
        upper_case_badges(self, "member_badge")


class EventAck(Message, frozen=True, kw_only=True):
    """The server has durably applied (or refused for good) event ``seq``."""

    seq: Counter
    ok: bool = written(True)
    error: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class CommandAction(StrEnum):
    LOCK = "lock"  # end the session once the machine is idle
    UNLOCK = "unlock"  # power the machine for a session opened by the server
    REFRESH = "refresh"  # re-publish status and machine states


class Command(Message, frozen=True, kw_only=True):
    """An order to a gateway. Never retained; a late or repeated one is dropped."""

    command_id: Token
    action: CommandAction
    machine: Ident | None = None
    issued_at_ms: Millis
    expires_at_ms: Millis
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class Telemetry(Message, frozen=True, kw_only=True):
    """A sample of a machine's current, at most once (QoS 0)."""

    machine: Ident
    at_ms: Millis
    current_a: Annotated[float, msgspec.Meta(ge=0, le=1000)]
    running: bool
    power_w: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    state: MachineStateName | None = None


M = TypeVar("M", bound=Message)


_encoder = msgspec.json.Encoder()
_decoders: dict[type[Message], "msgspec.json.Decoder[Any]"] = {}


def _decoder(model: type[M]) -> "msgspec.json.Decoder[M]":
    found = _decoders.get(model)
    if found is None:
        found = _decoders.setdefault(model, msgspec.json.Decoder(model))
    return found


def encode(message: Message) -> bytes:
    """The compact JSON bytes of ``message``, with absent optional fields left out.

    A field that is None is absent; every other field is written, defaults included
    (``"message":""``, ``"ok":true``: see :func:`written`). A message made in code is
    checked as its receiver will check it: :class:`BadPayload` rather than a payload the
    peer refuses.
    """
    payload = _encoder.encode(message)
    try:
        _decoder(type(message)).decode(payload)
    except msgspec.ValidationError as error:
        raise BadPayload(f"cannot send this {type(message).__name__}: {_problem(error)}") from None
    return payload


def decode(model: type[M], payload: bytes | bytearray, *, limit: int = MAX_PAYLOAD_BYTES) -> M:
    """Parse ``payload`` as ``model``, or raise :class:`BadPayload` saying why.

    ``limit`` is the largest payload accepted; only the allowlist channel raises it. The
    error names the model and the first problem found, with where it is (``entries.3.badge``),
    never the value found there.
    """
    if len(payload) > limit:
        raise BadPayload(f"payload of {len(payload)} bytes is over {limit}")
    try:
        return _decoder(model).decode(payload)
    except msgspec.ValidationError as error:
        raise BadPayload(f"invalid {model.__name__}: {_problem(error)}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        why = str(error).removeprefix("JSON is malformed: ")
        raise BadPayload(f"invalid {model.__name__}: (payload): Invalid JSON: {why}") from None
    except RecursionError:
        raise BadPayload(
            f"invalid {model.__name__}: (payload): nested deeper than the recursion limit"
        ) from None


def _problem(error: msgspec.ValidationError) -> str:
    """msgspec's ``Expected `int` >= 1 - at `$.entries[3].seq``` as ``entries.3.seq: Expected `int` >= 1``."""
    text, at, where = str(error).rpartition(" - at `")
    if not at:
        text, where = str(error), "$"
    path = where.rstrip("`").removeprefix("$").replace("[", ".").replace("]", "").lstrip(".")
    missing = text.removeprefix("Object missing required field `")
    if missing != text:
        path, text = ".".join(p for p in (path, missing.rstrip("`")) if p), "Field required"
    elif text.startswith(("Invalid enum value", "Invalid value")):
        text = text.partition(" '")[0]  # not the value itself: it may be anything, of any length
    return f"{path or '(payload)'}: {text}"

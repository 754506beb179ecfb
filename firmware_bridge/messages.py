"""The messages of the bridge protocol and their payloads (docs/firmware-protocol.md, "Messages").

Integers are unsigned and big-endian. ``channel`` numbers the machines one
microcontroller serves (0 for the first). Handshake messages travel with seq 0 and are
never acknowledged; every other message but ACK is sequenced and acknowledged.
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from firmware_bridge.errors import BadMessage
from firmware_bridge.framing import MAX_PAYLOAD

PROTOCOL_MAJOR = 1
"""Incremented for a change an older peer would misread; the handshake refuses a mismatch."""
PROTOCOL_MINOR = 0
"""Incremented for an addition an older peer can ignore."""


class Kind(IntEnum):
    ACK = 0x01
    PING = 0x02
    HELLO = 0x10
    HELLO_REPLY = 0x11
    ANNOUNCE = 0x12
    SWITCH = 0x20
    INDICATE = 0x21
    BADGE = 0x30
    BUTTON = 0x31
    CURRENT = 0x32


class SignalCode(IntEnum):
    """What the machine's lights show (the controller's ``Signal``, by number)."""

    LOCKED = 0
    AUTHORISING = 1
    GRANTED = 2
    DENIED = 3
    RUNNING = 4
    ERROR = 5


@dataclass(frozen=True, slots=True)
class Hello:
    """Gateway → microcontroller, seq 0: start (again) from sequence 0, in this protocol version."""

    major: int = PROTOCOL_MAJOR
    minor: int = PROTOCOL_MINOR


@dataclass(frozen=True, slots=True)
class HelloReply:
    """Microcontroller → gateway, seq 0: its protocol version, the id of its current boot,
    how many channels it serves, and its firmware's name and version."""

    major: int
    minor: int
    boot_id: int
    channels: int
    firmware: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Microcontroller → gateway, seq 0: I have (re)started, or lost the link: say hello."""

    boot_id: int


@dataclass(frozen=True, slots=True)
class Ping:
    """Gateway → microcontroller: nothing to say, but the link must be alive."""


@dataclass(frozen=True, slots=True)
class SwitchSet:
    """Gateway → microcontroller: switch the relay of ``channel``; acknowledged once done."""

    channel: int
    on: bool


@dataclass(frozen=True, slots=True)
class Indicate:
    """Gateway → microcontroller: show ``signal``; ``family`` is the refusal family
    (protocol.refusals.RefusalFamily) of a DENIED signal, 0 otherwise."""

    channel: int
    signal: SignalCode
    family: int = 0


@dataclass(frozen=True, slots=True)
class Badge:
    """Microcontroller → gateway: a badge was tapped (already debounced) on ``channel``."""

    channel: int
    uid: bytes


@dataclass(frozen=True, slots=True)
class Button:
    """Microcontroller → gateway: the button of ``channel`` was pressed."""

    channel: int


@dataclass(frozen=True, slots=True)
class Current:
    """Microcontroller → gateway: the RMS current of ``channel`` now, in milliamperes."""

    channel: int
    milliamps: int


Message = Hello | HelloReply | Announce | Ping | SwitchSet | Indicate | Badge | Button | Current
HANDSHAKE = (Kind.HELLO, Kind.HELLO_REPLY, Kind.ANNOUNCE)


def _channel(value: int) -> int:
    if not 0 <= value <= 15:
        raise BadMessage(f"channel {value} is not 0 to 15")
    return value


def _encode_hello_reply(message: HelloReply) -> bytes:
    name = message.firmware.encode("ascii", "replace")[: MAX_PAYLOAD - 7]
    return struct.pack(">BBIB", message.major, message.minor, message.boot_id, message.channels) + name


def _encode_badge(message: Badge) -> bytes:
    if not 4 <= len(message.uid) <= 10:
        raise BadMessage(f"a badge UID is 4 to 10 bytes, not {len(message.uid)}")
    return bytes((_channel(message.channel), len(message.uid))) + message.uid


_ENCODERS: dict[type, tuple[Kind, Callable[[Any], bytes]]] = {
    Hello: (Kind.HELLO, lambda m: bytes((m.major, m.minor))),
    HelloReply: (Kind.HELLO_REPLY, _encode_hello_reply),
    Announce: (Kind.ANNOUNCE, lambda m: struct.pack(">I", m.boot_id)),
    Ping: (Kind.PING, lambda m: b""),
    SwitchSet: (Kind.SWITCH, lambda m: bytes((_channel(m.channel), 1 if m.on else 0))),
    Indicate: (Kind.INDICATE, lambda m: bytes((_channel(m.channel), int(m.signal), m.family))),
    Badge: (Kind.BADGE, _encode_badge),
    Button: (Kind.BUTTON, lambda m: bytes((_channel(m.channel),))),
    Current: (Kind.CURRENT, lambda m: struct.pack(">BI", _channel(m.channel), m.milliamps)),
}


def encode(message: Message) -> tuple[Kind, bytes]:
    """The type and payload of ``message``."""
    kind, encoder = _ENCODERS[type(message)]
    try:
        return kind, encoder(message)
    except (struct.error, ValueError) as error:
        if isinstance(error, BadMessage):
            raise
        raise BadMessage(f"cannot encode {message!r}: {error}") from None


def _exactly(payload: bytes, size: int) -> bytes:
    if len(payload) != size:
        raise BadMessage(f"a payload of {len(payload)} bytes where {size} are expected")
    return payload


def _decode_ping(payload: bytes) -> Ping:
    _exactly(payload, 0)
    return Ping()


def _decode_hello_reply(payload: bytes) -> HelloReply:
    major, minor, boot_id, channels = struct.unpack(">BBIB", payload[:7])
    return HelloReply(major, minor, boot_id, channels, payload[7:].decode("ascii", "replace"))


def _decode_switch(payload: bytes) -> SwitchSet:
    channel, on = _exactly(payload, 2)
    if on > 1:
        raise BadMessage(f"SWITCH says {on}, neither 0 (off) nor 1 (on)")
    return SwitchSet(_channel(channel), on == 1)


def _decode_indicate(payload: bytes) -> Indicate:
    channel, signal, family = _exactly(payload, 3)
    return Indicate(_channel(channel), SignalCode(signal), family)


def _decode_badge(payload: bytes) -> Badge:
    if len(payload) < 2 or len(payload) != 2 + payload[1] or not 4 <= payload[1] <= 10:
        raise BadMessage(f"a BADGE payload of {len(payload)} bytes does not hold its UID")
    return Badge(_channel(payload[0]), payload[2:])


def _decode_current(payload: bytes) -> Current:
    channel, milliamps = struct.unpack(">BI", payload)
    return Current(_channel(channel), milliamps)


_DECODERS: dict[Kind, Callable[[bytes], Message]] = {
    Kind.HELLO: lambda p: Hello(*struct.unpack(">BB", p[:2])),
    Kind.HELLO_REPLY: _decode_hello_reply,
    Kind.ANNOUNCE: lambda p: Announce(*struct.unpack(">I", p)),
    Kind.PING: _decode_ping,
    Kind.SWITCH: _decode_switch,
    Kind.INDICATE: _decode_indicate,
    Kind.BADGE: _decode_badge,
    Kind.BUTTON: lambda p: Button(_channel(_exactly(p, 1)[0])),
    Kind.CURRENT: _decode_current,
}


def decode(kind: int, payload: bytes) -> Message:
    """The message a packet carries; :class:`BadMessage` says what is wrong with it."""
    try:
        decoder = _DECODERS[Kind(kind)]
    except (ValueError, KeyError):
        raise BadMessage(f"an unknown message type 0x{kind:02X}") from None
    try:
        return decoder(payload)
    except BadMessage:
        raise
    except (struct.error, ValueError) as error:
        raise BadMessage(f"a {Kind(kind).name} payload of {len(payload)} bytes: {error}") from None

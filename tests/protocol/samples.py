"""One complete and one minimal example of every message of the contract."""

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.allowlist import (
    Allowlist,
    AllowlistEntry,
    AllowlistGrant,
    AllowlistMachine,
    SignedAllowlist,
    public_key_text,
    sign,
)
from protocol.messages import (
    AccessReply,
    AccessRequest,
    CertificationLevel,
    CertifyReply,
    CertifyRequest,
    Command,
    CommandAction,
    DecidedBy,
    EventAck,
    EventKind,
    GatewayState,
    GatewayStatus,
    MachineState,
    MachineStateName,
    Message,
    Reason,
    Telemetry,
    UsageEvent,
)
from protocol.topics import Channel

T0 = 1_767_225_600_000
"""2026-01-01T00:00:00Z in milliseconds since the Unix epoch."""

EXAMPLE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
"""The example signing key of docs/protocol.md (section 9): private bytes 00 01 ... 1f. Never use it."""
EXAMPLE_PUBLIC_KEY = public_key_text(EXAMPLE_KEY.public_key())

MODELS: list[type[Message]] = [
    GatewayStatus,
    MachineState,
    AccessRequest,
    AccessReply,
    UsageEvent,
    EventAck,
    Command,
    Telemetry,
    CertifyRequest,
    CertifyReply,
    SignedAllowlist,
    Allowlist,
    AllowlistEntry,
    AllowlistGrant,
    AllowlistMachine,
]

_ALLOWLIST = Allowlist(
    site="lyon",
    gateway="gw-1",
    version=42,
    issued_at_ms=T0,
    expires_at_ms=T0 + 7 * 86_400_000,
    machines=[
        AllowlistMachine(machine="brother-s7200"),
        AllowlistMachine(machine="overlocker-1", locked_out=True, lockout_reason="needle plate on order"),
    ],
    entries=[
        AllowlistEntry(
            badge="04A1B2C3D4E5F6",
            member_id=1234,
            member_name="Camille",
            manager=True,
            grants=[
                AllowlistGrant(machine="brother-s7200", level=CertificationLevel.TRAINER),
                AllowlistGrant(
                    machine="overlocker-1", level=CertificationLevel.SUPERVISED, until_ms=T0 + 90 * 86_400_000
                ),
            ],
            max_minutes=45,
        )
    ],
)

COMPLETE: dict[type[Message], Message] = {
    GatewayStatus: GatewayStatus(
        state=GatewayState.ONLINE,
        boot=42,
        software="atelier-access 0.1.0",
        machines=["brother-s7200", "overlocker-1"],
        at_ms=T0,
        backlog=3,
    ),
    MachineState: MachineState(
        machine="brother-s7200",
        state=MachineStateName.RUNNING,
        session_id="b42-17",
        member_id=1234,
        at_ms=T0 + 5_000,
    ),
    AccessRequest: AccessRequest(
        request_id="r-8f14e45f",
        machine="brother-s7200",
        badge="04A1B2C3D4E5F6",
        sent_at_ms=T0,
        expires_at_ms=T0 + 500,
        supervisor_badge="7EAC4E55",
    ),
    AccessReply: AccessReply(
        request_id="r-8f14e45f",
        machine="brother-s7200",
        badge="04A1B2C3D4E5F6",
        granted=False,
        reason=Reason.CERTIFICATION_EXPIRED,
        message="Certification « piqueuse plate » expirée le 12/01",
        member_id=1234,
        member_name="Camille",
        trainer=True,
        supervisor_id=77,
        max_minutes=90,
    ),
    UsageEvent: UsageEvent(
        seq=1017,
        session_id="b42-17",
        machine="brother-s7200",
        kind=EventKind.SESSION_ENDED,
        at_ms=T0 + 3_600_000,
        badge="04A1B2C3D4E5F6",
        member_id=1234,
        decided_by=DecidedBy.CACHE,
        supervisor_id=77,
        unlocked_ms=3_600_000,
        running_ms=2_400_000,
        idle_ms=1_200_000,
        energy_wh=412.5,
        end_reason="badge_out",
    ),
    EventAck: EventAck(seq=1017, ok=False, error="unknown session"),
    Command: Command(
        command_id="c-77",
        action=CommandAction.LOCK,
        machine="brother-s7200",
        issued_at_ms=T0,
        expires_at_ms=T0 + 60_000,
        reason="workshop closing",
    ),
    Telemetry: Telemetry(
        machine="brother-s7200",
        at_ms=T0,
        current_a=2.75,
        running=True,
        power_w=632.5,
        state=MachineStateName.RUNNING,
    ),
    CertifyRequest: CertifyRequest(
        request_id="c-5a1e",
        machine="brother-s7200",
        trainer_badge="7EAC4E55",
        member_badge="04A1B2C3D4E5F6",
        level=CertificationLevel.SUPERVISED,
        sent_at_ms=T0,
        expires_at_ms=T0 + 500,
    ),
    CertifyReply: CertifyReply(
        request_id="c-5a1e",
        machine="brother-s7200",
        member_badge="04A1B2C3D4E5F6",
        certified=True,
        reason=Reason.GRANTED,
        message="Camille est habilitée « piqueuse plate » / Camille is certified",
        member_id=1234,
        member_name="Camille",
        skills=["industrial-sewing", "lockstitch"],
    ),
    SignedAllowlist: sign(_ALLOWLIST, EXAMPLE_KEY, "site-1"),
    Allowlist: _ALLOWLIST,
    AllowlistEntry: _ALLOWLIST.entries[0],
    AllowlistGrant: _ALLOWLIST.entries[0].grants[1],
    AllowlistMachine: _ALLOWLIST.machines[1],
}

MINIMAL_JSON: dict[type[Message], dict[str, object]] = {
    GatewayStatus: {"state": "lost", "boot": 1, "at_ms": 0},
    MachineState: {"machine": "m1", "state": "locked", "at_ms": T0},
    AccessRequest: {
        "request_id": "r1",
        "machine": "m1",
        "badge": "0A1B",
        "sent_at_ms": T0,
        "expires_at_ms": T0 + 500,
    },
    AccessReply: {
        "request_id": "r1",
        "machine": "m1",
        "badge": "0A1B",
        "granted": True,
        "reason": "granted",
    },
    UsageEvent: {"seq": 1, "session_id": "s1", "machine": "m1", "kind": "session_started", "at_ms": T0},
    EventAck: {"seq": 1},
    Command: {"command_id": "c1", "action": "refresh", "issued_at_ms": T0, "expires_at_ms": T0 + 1},
    Telemetry: {"machine": "m1", "at_ms": T0, "current_a": 0, "running": False},
    CertifyRequest: {
        "request_id": "c1",
        "machine": "m1",
        "trainer_badge": "7EAC",
        "member_badge": "0A1B",
        "sent_at_ms": T0,
        "expires_at_ms": T0 + 500,
    },
    CertifyReply: {
        "request_id": "c1",
        "machine": "m1",
        "member_badge": "0A1B",
        "certified": False,
        "reason": "not_a_trainer",
    },
    SignedAllowlist: {"key_id": "site-1", "snapshot": "{}", "signature": ""},
    Allowlist: {"site": "lyon", "gateway": "gw-1", "version": 1, "issued_at_ms": T0, "expires_at_ms": T0 + 1},
    AllowlistEntry: {"badge": "0A1B", "member_id": 1},
    AllowlistGrant: {"machine": "m1", "level": "autonomous"},
    AllowlistMachine: {"machine": "m1"},
}


GATEWAY_TO_SERVER: dict[Channel, type[Message]] = {
    Channel.STATUS: GatewayStatus,
    Channel.MACHINE_STATE: MachineState,
    Channel.ACCESS_REQUEST: AccessRequest,
    Channel.EVENTS: UsageEvent,
    Channel.TELEMETRY: Telemetry,
    Channel.CERTIFY_REQUEST: CertifyRequest,
}
"""What each channel carries, by direction: docs/protocol.md section 4."""

SERVER_TO_GATEWAY: dict[Channel, type[Message]] = {
    Channel.ACCESS_REPLY: AccessReply,
    Channel.EVENTS_ACK: EventAck,
    Channel.COMMAND: Command,
    Channel.CERTIFY_REPLY: CertifyReply,
    Channel.ALLOWLIST: SignedAllowlist,
}


def required_fields(model: type[Message]) -> list[str]:
    return [field.name for field in msgspec.structs.fields(model) if field.required]

"""Property-based tests: whatever arrives on the wire, decode says BadPayload or a message."""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import BadPayload
from protocol.ids import ID_PATTERN
from protocol.messages import (
    MAX_PAYLOAD_BYTES,
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
    decode,
    encode,
)
from tests.protocol.samples import COMPLETE, MODELS

models = st.sampled_from(MODELS)


def _decode_or_refuse(model: type[Message], payload: bytes) -> Message | None:
    """Only BadPayload may escape decode; anything else fails the test."""
    try:
        return decode(model, payload)
    except BadPayload as error:
        reason = str(error)
    assert reason, "a refusal says why"
    return None


@given(models, st.binary(max_size=MAX_PAYLOAD_BYTES + 64))
def test_arbitrary_bytes_never_raise_anything_but_bad_payload(model: type[Message], payload: bytes) -> None:
    _decode_or_refuse(model, payload)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@given(models, st.dictionaries(st.text(max_size=16), json_values, max_size=8))
def test_arbitrary_json_objects_never_raise_anything_but_bad_payload(
    model: type[Message], data: dict[str, Any]
) -> None:
    _decode_or_refuse(model, json.dumps(data).encode())


@given(models, st.data())
def test_valid_messages_with_one_field_replaced_never_raise_anything_but_bad_payload(
    model: type[Message], data: st.DataObject
) -> None:
    fields = json.loads(encode(COMPLETE[model]))
    name = data.draw(st.sampled_from(sorted(fields)))
    fields[name] = data.draw(json_values)
    _decode_or_refuse(model, json.dumps(fields).encode())


@given(models, st.data())
def test_corrupted_valid_payloads_never_raise_anything_but_bad_payload(
    model: type[Message], data: st.DataObject
) -> None:
    payload = bytearray(encode(COMPLETE[model]))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(payload) - 1))
        payload[index] = data.draw(st.integers(0, 255))
    _decode_or_refuse(model, bytes(payload))


# --- any valid message round-trips --------------------------------------------------------------

ids = st.from_regex(ID_PATTERN, fullmatch=True)
tokens = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
badges = st.from_regex(r"[0-9A-Fa-f]{4,32}", fullmatch=True)
millis = st.integers(min_value=0, max_value=2**63 - 1)
member_ids = st.none() | st.integers(min_value=1, max_value=2**63 - 1)


def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=["Cs"]), max_size=max_size)


messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        GatewayStatus,
        state=st.sampled_from(GatewayState),
        boot=st.integers(1, 2**63 - 1),
        software=texts(64),
        # 64 ids of 64 characters would not fit in MAX_PAYLOAD_BYTES: see docs/protocol.md.
        machines=st.lists(ids, max_size=32),
        at_ms=millis,
        backlog=st.none() | st.integers(0, 2**63 - 1),
    ),
    st.builds(
        MachineState,
        machine=ids,
        state=st.sampled_from(MachineStateName),
        session_id=st.none() | tokens,
        member_id=member_ids,
        at_ms=millis,
    ),
    st.builds(
        AccessRequest,
        request_id=tokens,
        machine=ids,
        badge=badges,
        sent_at_ms=millis,
        expires_at_ms=millis,
        supervisor_badge=st.none() | badges,
    ),
    st.builds(
        AccessReply,
        request_id=tokens,
        machine=ids,
        badge=badges,
        granted=st.booleans(),
        reason=st.sampled_from(Reason),
        message=texts(200),
        member_id=member_ids,
        member_name=st.none() | texts(120),
        trainer=st.booleans(),
        supervisor_id=member_ids,
        max_minutes=st.none() | st.integers(0, 2**63 - 1),
    ),
    st.builds(
        UsageEvent,
        seq=st.integers(1, 2**63 - 1),
        session_id=tokens,
        machine=ids,
        kind=st.sampled_from(EventKind),
        at_ms=millis,
        badge=st.none() | badges,
        member_id=member_ids,
        decided_by=st.none() | st.sampled_from(DecidedBy),
        supervisor_id=member_ids,
        unlocked_ms=millis,
        running_ms=millis,
        idle_ms=millis,
        end_reason=st.none() | texts(40),
        energy_wh=st.none() | st.floats(min_value=0, max_value=1e12),
    ),
    st.builds(EventAck, seq=st.integers(1, 2**63 - 1), ok=st.booleans(), error=st.none() | texts(200)),
    st.builds(
        Command,
        command_id=tokens,
        action=st.sampled_from(CommandAction),
        machine=st.none() | ids,
        issued_at_ms=millis,
        expires_at_ms=millis,
        reason=st.none() | texts(200),
    ),
    st.builds(
        Telemetry,
        machine=ids,
        at_ms=millis,
        current_a=st.floats(min_value=0, max_value=1000),
        running=st.booleans(),
        power_w=st.none() | st.floats(min_value=0, max_value=1_000_000),
        state=st.none() | st.sampled_from(MachineStateName),
    ),
    st.builds(
        CertifyRequest,
        request_id=tokens,
        machine=ids,
        trainer_badge=badges,
        member_badge=badges,
        level=st.sampled_from(CertificationLevel),
        sent_at_ms=millis,
        expires_at_ms=millis,
    ),
    st.builds(
        CertifyReply,
        request_id=tokens,
        machine=ids,
        member_badge=badges,
        certified=st.booleans(),
        reason=st.sampled_from(Reason),
        # Control characters included: JSON writes each as 6 bytes (\u0001), and 16 skill ids of
        # 64 characters leave room for them (docs/protocol.md, section 18, item 16).
        message=texts(200),
        member_id=member_ids,
        member_name=st.none() | texts(120),
        skills=st.lists(ids, max_size=16),
    ),
)


@settings(max_examples=300)
@given(messages)
def test_every_valid_message_encodes_and_decodes_back_to_itself(message: Message) -> None:
    payload = encode(message)
    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert decode(type(message), payload) == message


@given(badges)
def test_badges_always_come_back_upper_case(badge: str) -> None:
    request = decode(
        AccessRequest,
        json.dumps(
            {"request_id": "r", "machine": "m", "badge": badge, "sent_at_ms": 0, "expires_at_ms": 0}
        ).encode(),
    )
    assert request.badge == badge.upper()

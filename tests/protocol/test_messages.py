"""Payloads: encoding, decoding and every way a payload is refused."""

import json
import typing
from typing import Any

import msgspec
import pytest

from protocol import BadPayload, ProtocolError
from protocol.messages import (
    MAX_PAYLOAD_BYTES,
    AccessReply,
    AccessRequest,
    BadgeUid,
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
from tests.protocol.samples import COMPLETE, MINIMAL_JSON, MODELS, T0, required_fields


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def _with(model: type[Message], **changes: Any) -> bytes:
    return _json(MINIMAL_JSON[model] | changes)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_complete_message_encodes_and_decodes_back_to_itself(model: type[Message]) -> None:
    message = COMPLETE[model]
    assert decode(model, encode(message)) == message


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_minimal_message_decodes_and_encodes_back_to_itself(model: type[Message]) -> None:
    message = decode(model, _json(MINIMAL_JSON[model]))
    assert decode(model, encode(message)) == message


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_encoding_is_compact_json_of_an_object(model: type[Message]) -> None:
    payload = encode(COMPLETE[model])
    data = json.loads(payload)
    assert isinstance(data, dict)
    assert payload == json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(payload) <= MAX_PAYLOAD_BYTES


def test_absent_optional_fields_are_left_out_and_defaults_are_written() -> None:
    reply = AccessReply(request_id="r1", machine="m1", badge="0a1b", granted=True, reason=Reason.GRANTED)
    assert json.loads(encode(reply)) == {
        "request_id": "r1",
        "machine": "m1",
        "badge": "0A1B",
        "granted": True,
        "reason": "granted",
        "message": "",
        "trainer": False,
    }
    certify = CertifyRequest(
        request_id="c1",
        machine="m1",
        trainer_badge="7eac",
        member_badge="0a1b",
        sent_at_ms=0,
        expires_at_ms=0,
    )
    assert json.loads(encode(certify))["level"] == "autonomous"
    refused = CertifyReply(
        request_id="c1", machine="m1", member_badge="0A1B", certified=False, reason=Reason.NOT_A_TRAINER
    )
    assert json.loads(encode(refused)) == {
        "request_id": "c1",
        "machine": "m1",
        "member_badge": "0A1B",
        "certified": False,
        "reason": "not_a_trainer",
        "message": "",
        "skills": [],
    }


def test_times_and_durations_stay_integers_on_the_wire() -> None:
    data = json.loads(encode(COMPLETE[UsageEvent]))
    for name in ("at_ms", "unlocked_ms", "running_ms", "idle_ms", "seq", "member_id"):
        assert type(data[name]) is int, name


def test_text_is_utf8_on_the_wire() -> None:
    payload = encode(COMPLETE[AccessReply])
    assert "expirée".encode() in payload
    assert decode(AccessReply, payload).message == "Certification « piqueuse plate » expirée le 12/01"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_unknown_fields_are_ignored(model: type[Message]) -> None:
    newer = json.loads(encode(COMPLETE[model])) | {
        "added_in_v1_5": "x",
        "nested": {"a": [1, 2, {"b": None}]},
    }
    message = decode(model, _json(newer))
    assert message == COMPLETE[model]
    assert b"added_in_v1_5" not in encode(message)


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (AccessRequest, MINIMAL_JSON[AccessRequest] | {"badge": "04a1b2c3d4e5f6"}),
        (AccessReply, MINIMAL_JSON[AccessReply] | {"badge": "deadbeef"}),
        (UsageEvent, MINIMAL_JSON[UsageEvent] | {"badge": "abcdef0123"}),
        (AccessRequest, MINIMAL_JSON[AccessRequest] | {"supervisor_badge": "7eac4e55"}),
        (CertifyRequest, MINIMAL_JSON[CertifyRequest] | {"trainer_badge": "7eac4e55"}),
        (CertifyRequest, MINIMAL_JSON[CertifyRequest] | {"member_badge": "0e1f0002"}),
        (CertifyReply, MINIMAL_JSON[CertifyReply] | {"member_badge": "0e1f0002"}),
    ],
    ids=[
        "AccessRequest",
        "AccessReply",
        "UsageEvent",
        "supervisor_badge",
        "trainer_badge",
        "member_badge",
        "CertifyReply",
    ],
)
def test_badge_uids_are_upper_cased_on_decode(model: type[Message], data: dict[str, Any]) -> None:
    message = decode(model, _json(data))
    for name in ("badge", "supervisor_badge", "trainer_badge", "member_badge"):
        if name in data:
            assert getattr(message, name) == str(data[name]).upper(), name


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_badge_field_of_every_message_is_upper_cased(model: type[Message]) -> None:
    """A new field typed BadgeUid needs its message's ``__post_init__`` to name it."""
    badges = [
        field.name
        for field in msgspec.structs.fields(model)
        if field.type == BadgeUid or BadgeUid in typing.get_args(field.type)
    ]
    data = json.loads(encode(COMPLETE[model]))
    for name in badges:
        assert data[name] == data[name].upper() != data[name].lower(), name
        data[name] = data[name].lower()
    assert decode(model, _json(data)) == COMPLETE[model]
    made = msgspec.structs.replace(COMPLETE[model], **{name: data[name] for name in badges})
    assert made == COMPLETE[model]


def test_a_message_made_in_code_is_checked_when_it_is_encoded() -> None:
    with pytest.raises(BadPayload, match=r"^cannot send this EventAck: seq: Expected `int` >= 1"):
        encode(EventAck(seq=0))
    with pytest.raises(
        BadPayload, match=r"^cannot send this AccessReply: message: Expected `str` of length <= 200"
    ):
        encode(
            AccessReply(
                request_id="r",
                machine="m",
                badge="0A1B",
                granted=False,
                reason=Reason.BAD_REQUEST,
                message="x" * 201,
            )
        )
    with pytest.raises(BadPayload, match="granted: Expected `bool`, got `int`"):
        encode(AccessReply(request_id="r", machine="m", badge="0A1B", granted=1, reason=Reason.GRANTED))  # type: ignore[arg-type]


def test_badge_uids_are_upper_cased_when_made_in_code() -> None:
    request = AccessRequest(request_id="r", machine="m", badge="04a1b2c3", sent_at_ms=0, expires_at_ms=0)
    assert request.badge == "04A1B2C3"
    assert b'"badge":"04A1B2C3"' in encode(request)


@pytest.mark.parametrize("badge", ["0A1B", "0123456789", "04A1B2C3", "04A1B2C3D4E5F6", "F" * 32])
def test_badge_uids_of_4_to_32_hex_digits_are_accepted(badge: str) -> None:
    assert decode(AccessRequest, _with(AccessRequest, badge=badge.lower())).badge == badge


def test_every_reason_code_is_stable() -> None:
    assert [r.value for r in Reason] == [
        "granted",
        "unknown_badge",
        "badge_disabled",
        "member_inactive",
        "not_certified",
        "certification_expired",
        "machine_locked_out",
        "unknown_machine",
        "unknown_gateway",
        "request_expired",
        "bad_request",
        "supervision_required",
        "insufficient_balance",
        "not_a_trainer",
        "self_certification",
        "prerequisite_missing",
        "second_factor_required",
        "server_unreachable",
        "machine_in_use",
    ]


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (GatewayState, ["online", "offline", "lost"]),
        (MachineStateName, ["locked", "authorising", "unlocked", "running"]),
        (EventKind, ["session_started", "running_started", "running_stopped", "session_ended"]),
        (DecidedBy, ["server", "cache"]),
        (CommandAction, ["lock", "unlock", "refresh"]),
        (CertificationLevel, ["supervised", "autonomous", "trainer"]),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_enumerations_are_stable(enum: Any, values: list[str]) -> None:
    assert [member.value for member in enum] == values


def test_messages_are_immutable() -> None:
    ack = EventAck(seq=1)
    with pytest.raises(AttributeError):
        ack.seq = 2  # type: ignore[misc]


def test_null_is_accepted_where_a_field_may_be_absent() -> None:
    event = decode(
        UsageEvent,
        _with(UsageEvent, badge=None, member_id=None, decided_by=None, supervisor_id=None, end_reason=None),
    )
    assert event == decode(UsageEvent, _json(MINIMAL_JSON[UsageEvent]))
    request = decode(AccessRequest, _with(AccessRequest, supervisor_badge=None))
    assert request.supervisor_badge is None
    reply = decode(AccessReply, _with(AccessReply, supervisor_id=None))
    assert reply == decode(AccessReply, _json(MINIMAL_JSON[AccessReply]))


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b" ",
        b"not json",
        b"{",
        b'{"seq": 1',
        b"\xff\xfe\x00",
        b"\xef\xbb\xbf{}",
        b"{'seq': 1}",
        b'{"seq": 1} x',
    ],
)
def test_what_is_not_json_is_refused(payload: bytes) -> None:
    with pytest.raises(BadPayload, match=r"^invalid EventAck: \(payload\): Invalid JSON"):
        decode(EventAck, payload)


@pytest.mark.parametrize("payload", [b"[]", b"[1]", b"1", b"null", b"true", b'"seq"'])
def test_json_that_is_not_an_object_is_refused(payload: bytes) -> None:
    with pytest.raises(BadPayload, match=r"^invalid EventAck: \(payload\): Expected `object`, got `"):
        decode(EventAck, payload)


def test_deeply_nested_json_under_the_size_limit_is_refused() -> None:
    payload = b'{"seq":1,"x":' + b"[" * 1500 + b"]" * 1500 + b"}"
    assert len(payload) <= MAX_PAYLOAD_BYTES
    with pytest.raises(BadPayload, match="recursion limit"):
        decode(EventAck, payload)


@pytest.mark.parametrize(
    ("model", "field"),
    [(m, f) for m in MODELS for f in required_fields(m)],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_a_missing_required_field_is_refused_by_name(model: type[Message], field: str) -> None:
    data = dict(MINIMAL_JSON[model])
    del data[field]
    with pytest.raises(BadPayload, match=rf"^invalid {model.__name__}: {field}: Field required"):
        decode(model, _json(data))


@pytest.mark.parametrize(
    ("model", "field"),
    [(m, f) for m in MODELS for f in required_fields(m)],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_null_is_refused_for_a_required_field(model: type[Message], field: str) -> None:
    with pytest.raises(BadPayload, match=rf"^invalid {model.__name__}: {field}: "):
        decode(model, _with(model, **{field: None}))


WRONG_TYPES: list[tuple[type[Message], str, object]] = [
    (GatewayStatus, "state", 1),
    (GatewayStatus, "boot", "first"),
    (GatewayStatus, "boot", 1.5),
    (GatewayStatus, "machines", "m1"),
    (GatewayStatus, "machines", [1]),
    (GatewayStatus, "software", 3),
    (GatewayStatus, "at_ms", "now"),
    (MachineState, "machine", 7),
    (MachineState, "state", ["running"]),
    (MachineState, "member_id", "camille"),
    (MachineState, "session_id", {"id": "s1"}),
    (AccessRequest, "badge", 1234),
    (AccessRequest, "sent_at_ms", 1.25),
    (AccessRequest, "request_id", 17),
    (AccessReply, "granted", "maybe"),
    (AccessReply, "granted", 2),
    (AccessReply, "reason", True),
    (AccessReply, "member_name", 12),
    (AccessReply, "message", None),
    (AccessReply, "trainer", 1),
    (AccessReply, "trainer", "yes"),
    (AccessReply, "trainer", None),
    (AccessReply, "supervisor_id", "3"),
    (AccessRequest, "supervisor_badge", 7),
    (UsageEvent, "seq", "first"),
    (UsageEvent, "kind", 3),
    (UsageEvent, "running_ms", None),
    (UsageEvent, "running_ms", 10.5),
    (UsageEvent, "decided_by", True),
    (UsageEvent, "supervisor_id", 2.5),
    (EventAck, "seq", [1]),
    (EventAck, "ok", "nope"),
    (EventAck, "error", 404),
    (Command, "action", None),
    (Command, "expires_at_ms", "soon"),
    (Telemetry, "current_a", "high"),
    (Telemetry, "running", "perhaps"),
    (Telemetry, "running", None),
    (CertifyRequest, "trainer_badge", 7),
    (CertifyRequest, "level", 2),
    (CertifyRequest, "level", None),
    (CertifyReply, "certified", "yes"),
    (CertifyReply, "certified", 1),
    (CertifyReply, "skills", "industrial-sewing"),
    (CertifyReply, "skills", [1]),
    (CertifyReply, "member_id", "12"),
]


@pytest.mark.parametrize(
    ("model", "field", "value"), WRONG_TYPES, ids=lambda v: getattr(v, "__name__", repr(v))
)
def test_a_field_of_the_wrong_type_is_refused_by_name(
    model: type[Message], field: str, value: object
) -> None:
    with pytest.raises(BadPayload, match=rf"^invalid {model.__name__}: {field}(\.\d+)?: "):
        decode(model, _with(model, **{field: value}))


OUT_OF_BOUNDS: list[tuple[type[Message], str, object]] = [
    (GatewayStatus, "boot", 0),
    (GatewayStatus, "at_ms", -1),
    (GatewayStatus, "software", "x" * 65),
    (GatewayStatus, "machines", [f"m{i}" for i in range(33)]),
    (GatewayStatus, "machines", ["Upper"]),
    (MachineState, "machine", "Brother"),
    (MachineState, "session_id", "has space"),
    (MachineState, "session_id", "s" * 65),
    (MachineState, "session_id", ""),
    (AccessRequest, "request_id", "r/1"),
    (AccessRequest, "request_id", "r" * 65),
    (AccessRequest, "machine", "-m"),
    (AccessRequest, "machine", "m" * 65),
    (AccessRequest, "badge", "ABC"),  # too short
    (AccessRequest, "badge", "A" * 33),  # too long
    (AccessRequest, "badge", "GHIJ"),  # not hex
    (AccessRequest, "badge", "04:A1:B2:C3"),
    (AccessRequest, "badge", "04A1 B2C3"),
    (AccessRequest, "expires_at_ms", -500),
    (AccessReply, "reason", "forbidden"),
    (AccessReply, "reason", "GRANTED"),
    (AccessReply, "message", "x" * 201),
    (AccessReply, "member_name", "x" * 121),
    (AccessReply, "supervisor_id", 0),
    (AccessRequest, "supervisor_badge", "ABC"),
    (AccessRequest, "supervisor_badge", "7E:AC"),
    (UsageEvent, "seq", 0),
    (UsageEvent, "seq", -1),
    (UsageEvent, "kind", "session_paused"),
    (UsageEvent, "decided_by", "guess"),
    (UsageEvent, "idle_ms", -1),
    (UsageEvent, "end_reason", "x" * 41),
    (UsageEvent, "supervisor_id", -1),
    (EventAck, "seq", 0),
    (EventAck, "error", "x" * 201),
    (Command, "action", "explode"),
    (Command, "command_id", "c#1"),
    (Command, "reason", "x" * 201),
    (Command, "machine", "all machines"),
    (Telemetry, "current_a", -0.1),
    (Telemetry, "current_a", 1000.5),
    (CertifyRequest, "level", "expert"),
    (CertifyRequest, "member_badge", "GHIJ"),
    (CertifyRequest, "request_id", "c 1"),
    (CertifyReply, "reason", "certified"),
    (CertifyReply, "skills", ["Sewing"]),
    (CertifyReply, "skills", [f"s{i}" for i in range(17)]),
    (CertifyReply, "message", "x" * 201),
    (CertifyReply, "member_name", "x" * 121),
]


@pytest.mark.parametrize(
    ("model", "field", "value"), OUT_OF_BOUNDS, ids=lambda v: getattr(v, "__name__", repr(v)[:20])
)
def test_a_value_out_of_bounds_is_refused_by_name(model: type[Message], field: str, value: object) -> None:
    with pytest.raises(BadPayload, match=rf"^invalid {model.__name__}: {field}(\.\d+)?: "):
        decode(model, _with(model, **{field: value}))


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (GatewayStatus, "software", "x" * 64),
        (GatewayStatus, "machines", [f"m{i}" for i in range(32)]),
        (AccessReply, "message", "é" * 200),  # characters, not bytes
        (AccessReply, "member_name", "x" * 120),
        (UsageEvent, "end_reason", "x" * 40),
        (AccessRequest, "request_id", "A_z-9" * 12 + "abcd"),
        (Telemetry, "current_a", 1000),
        (Telemetry, "current_a", 0.0),
        (CertifyReply, "skills", [f"s{i}" for i in range(16)]),
        (AccessRequest, "supervisor_badge", "F" * 32),
    ],
    ids=lambda v: getattr(v, "__name__", repr(v)[:20]),
)
def test_values_at_the_bounds_are_accepted(model: type[Message], field: str, value: object) -> None:
    assert getattr(decode(model, _with(model, **{field: value})), field) == value


def test_the_first_problem_is_reported() -> None:
    with pytest.raises(BadPayload) as caught:
        decode(AccessRequest, b"{}")
    assert str(caught.value).count("Field required") == 1


def test_a_payload_over_the_limit_is_refused_before_parsing() -> None:
    payload = b"{" + b" " * MAX_PAYLOAD_BYTES + b"}"
    with pytest.raises(
        BadPayload, match=rf"^payload of {MAX_PAYLOAD_BYTES + 2} bytes is over {MAX_PAYLOAD_BYTES}$"
    ):
        decode(EventAck, payload)


def test_a_payload_of_exactly_the_limit_is_accepted() -> None:
    body = b'{"seq":7}'
    payload = body[:-1] + b" " * (MAX_PAYLOAD_BYTES - len(body)) + b"}"
    assert len(payload) == MAX_PAYLOAD_BYTES
    assert decode(EventAck, payload) == EventAck(seq=7)
    with pytest.raises(BadPayload, match="over 4096"):
        decode(EventAck, payload + b" ")


def test_the_limit_is_4096_bytes() -> None:
    assert MAX_PAYLOAD_BYTES == 4096


def test_a_bytearray_is_decoded_like_bytes() -> None:
    assert decode(EventAck, bytearray(b'{"seq":3}')) == EventAck(seq=3)


def test_bad_payload_is_a_value_error_and_a_protocol_error() -> None:
    with pytest.raises(ValueError, match="invalid Telemetry"):
        decode(Telemetry, b"{}")
    assert issubclass(BadPayload, ProtocolError)


def test_the_error_says_the_model_and_the_field_but_not_the_value() -> None:
    secret = "4" * 33
    with pytest.raises(BadPayload) as caught:
        decode(AccessRequest, _with(AccessRequest, badge=secret))
    message = str(caught.value)
    assert message.startswith("invalid AccessRequest: badge: Expected `str` matching regex")
    assert secret not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_request_and_its_reply_echo_the_same_identifiers() -> None:
    request = COMPLETE[AccessRequest]
    assert isinstance(request, AccessRequest)
    reply = AccessReply(
        request_id=request.request_id,
        machine=request.machine,
        badge=request.badge.lower(),
        granted=True,
        reason=Reason.GRANTED,
    )
    decoded = decode(AccessReply, encode(reply))
    assert (decoded.request_id, decoded.machine, decoded.badge) == (
        request.request_id,
        request.machine,
        request.badge,
    )


def test_a_lost_status_is_a_status_like_any_other() -> None:
    will = GatewayStatus(state=GatewayState.LOST, boot=42, machines=["m1"], at_ms=T0)
    assert decode(GatewayStatus, encode(will)).state is GatewayState.LOST
    assert decode(MachineState, encode(COMPLETE[MachineState])).state is MachineStateName.RUNNING
    assert decode(Command, encode(COMPLETE[Command])).action is CommandAction.LOCK


def test_a_certification_and_its_reply_echo_the_same_identifiers() -> None:
    request = COMPLETE[CertifyRequest]
    assert isinstance(request, CertifyRequest)
    reply = CertifyReply(
        request_id=request.request_id,
        machine=request.machine,
        member_badge=request.member_badge.lower(),
        certified=True,
        reason=Reason.GRANTED,
    )
    decoded = decode(CertifyReply, encode(reply))
    assert (decoded.request_id, decoded.machine, decoded.member_badge) == (
        request.request_id,
        request.machine,
        request.member_badge,
    )


def test_an_older_peers_payloads_still_decode() -> None:
    """What a gateway or server from before supervision sends: the new fields take their defaults."""
    request = decode(AccessRequest, _json(MINIMAL_JSON[AccessRequest]))
    reply = decode(AccessReply, _json(MINIMAL_JSON[AccessReply]))
    event = decode(UsageEvent, _json(MINIMAL_JSON[UsageEvent]))

    assert request.supervisor_badge is None
    assert (reply.trainer, reply.supervisor_id) == (False, None)
    assert event.supervisor_id is None


def test_a_maximal_certify_reply_fits_in_a_payload() -> None:
    """16 skill ids of 64 characters, and the longest texts in 4-byte characters (see section 18)."""
    reply = CertifyReply(
        request_id="r" * 64,
        machine="m" * 64,
        member_badge="F" * 32,
        certified=False,
        reason=Reason.PREREQUISITE_MISSING,
        message="🧵" * 200,
        member_id=2**63 - 1,
        member_name="🧵" * 120,
        skills=[f"{n:02d}" + "s" * 62 for n in range(16)],
    )
    assert len(encode(reply)) <= MAX_PAYLOAD_BYTES


def test_a_maximal_certify_reply_fits_even_with_control_characters_escaped() -> None:
    """Each control character takes 6 bytes of JSON (docs/protocol.md, section 18, item 16)."""
    reply = CertifyReply(
        request_id="r" * 64,
        machine="m" * 64,
        member_badge="F" * 32,
        certified=False,
        reason=Reason.PREREQUISITE_MISSING,
        message="\x01" * 200,
        member_id=2**63 - 1,
        member_name="\x01" * 120,
        skills=[f"{n:02d}" + "s" * 62 for n in range(16)],
    )
    assert len(encode(reply)) <= MAX_PAYLOAD_BYTES

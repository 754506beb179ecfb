"""The bridge's frames: CRC-16/CCITT-FALSE, COBS, the packet layout, the message payloads."""

from __future__ import annotations

import contextlib
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import cobs, messages
from firmware_bridge.crc import CHECK, crc16
from firmware_bridge.errors import BadFrame, BadMessage
from firmware_bridge.framing import MAX_PAYLOAD, Deframer, Packet, pack, unpack
from firmware_bridge.messages import Badge, Current, Hello, HelloReply, Indicate, Kind, SignalCode, SwitchSet


def bitwise_crc(data: bytes) -> int:
    """CRC-16/CCITT-FALSE the slow way, straight from its parameters, to check the table."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def test_the_crc_has_the_catalogued_check_value() -> None:
    # Greg Cook's CRC catalogue, CRC-16/IBM-3740 (alias CRC-16/CCITT-FALSE): check=0x29b1.
    assert crc16(b"123456789") == CHECK == 0x29B1
    assert crc16(b"") == 0xFFFF


@given(st.binary(max_size=100))
def test_the_table_crc_is_the_bitwise_one(data: bytes) -> None:
    assert crc16(data) == bitwise_crc(data)
    assert crc16(data[len(data) // 2 :], crc16(data[: len(data) // 2])) == crc16(data), "it can run on"


# Wikipedia, "Consistent Overhead Byte Stuffing", encoding examples 1 to 6 and 8 to 11
# (the delimiter they show after each is not part of the COBS block).
BLOCK = bytes(range(1, 255))  # 01 02 ... FE
COBS_EXAMPLES = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (BLOCK, b"\xff" + BLOCK),
    (b"\x00" + BLOCK, b"\x01\xff" + BLOCK),
    (BLOCK + b"\xff", b"\xff" + BLOCK + b"\x02\xff"),
    (BLOCK[1:] + b"\xff\x00", b"\xff" + BLOCK[1:] + b"\xff\x01\x01"),
    (BLOCK[2:] + b"\xff\x00\x01", b"\xfe" + BLOCK[2:] + b"\xff\x02\x01"),
]


@pytest.mark.parametrize(("data", "encoded"), COBS_EXAMPLES)
def test_cobs_matches_the_published_examples(data: bytes, encoded: bytes) -> None:
    assert cobs.encode(data) == encoded
    assert cobs.decode(encoded) == data


@given(st.binary(max_size=700))
def test_cobs_round_trips_and_never_emits_zero(data: bytes) -> None:
    encoded = cobs.encode(data)
    assert 0 not in encoded
    assert cobs.decode(encoded) == data


@pytest.mark.parametrize("bad", [b"\x05\x11\x22", b"\x02\x00", b"\x00"])
def test_cobs_refuses_what_no_encoder_makes(bad: bytes) -> None:
    with pytest.raises(BadFrame):
        cobs.decode(bad)


# The frame layout of docs/firmware-protocol.md, byte for byte.
DOC_FRAMES = [
    (Packet(Kind.HELLO, 0, b"\x01\x00"), "02 10 02 01 03 AC 56 00"),
    (Packet(Kind.ACK, 1), "05 01 01 3E 1F 00"),
    (Packet(Kind.SWITCH, 1, b"\x00\x01"), "03 20 01 04 01 94 9F 00"),
    (Packet(Kind.BADGE, 1, bytes.fromhex("00 04 04 A1 B2 C3")), "03 30 01 08 04 04 A1 B2 C3 97 98 00"),
]


@pytest.mark.parametrize(("packet", "wire"), DOC_FRAMES)
def test_frames_are_as_documented(packet: Packet, wire: str) -> None:
    assert pack(packet) == bytes.fromhex(wire)
    assert unpack(bytes.fromhex(wire)[:-1]) == packet


def test_the_crc_covers_type_seq_and_payload_big_endian() -> None:
    body = bytes((Kind.SWITCH, 1, 0, 1))
    assert cobs.decode(pack(Packet(Kind.SWITCH, 1, b"\x00\x01"))[:-1]) == body + crc16(body).to_bytes(
        2, "big"
    )


@pytest.mark.parametrize(
    ("encoded", "complaint"),
    [
        (pack(Packet(Kind.PING, 3))[:-1][:-1] + b"\x01", "bad CRC"),
        (cobs.encode(b"\x02\x03"), "shorter than type, seq and CRC"),
        (b"\x09\x01\x02", "runs past the end"),
        (cobs.encode(bytes(80)), "longer than any packet"),
    ],
)
def test_bad_frames_are_refused_with_the_reason(encoded: bytes, complaint: str) -> None:
    with pytest.raises(BadFrame, match=complaint):
        unpack(encoded)


def test_a_payload_is_at_most_64_bytes() -> None:
    with pytest.raises(BadFrame):
        Packet(Kind.BADGE, 1, bytes(MAX_PAYLOAD + 1))


def test_the_deframer_logs_each_bad_frame_and_resynchronises(caplog: pytest.LogCaptureFixture) -> None:
    good = pack(Packet(Kind.PING, 7))
    corrupt = bytearray(pack(Packet(Kind.PING, 8)))
    corrupt[2] ^= 0x10
    deframer = Deframer("bridge on test")
    with caplog.at_level(logging.WARNING):
        packets = deframer.feed(b"\x00\x00" + bytes(corrupt) + good[:3]) + deframer.feed(
            good[3:] + b"\xaa" * 100 + b"\x00" + good
        )
    assert packets == [Packet(Kind.PING, 7), Packet(Kind.PING, 7)]
    assert deframer.rejected == 2
    assert "bridge on test: rejected a bad CRC" in caplog.text
    assert "bridge on test: rejected a frame of 100 bytes, longer than any packet" in caplog.text


def test_messages_round_trip() -> None:
    for message in (
        Hello(),
        HelloReply(1, 0, 0xDEADBEEF, 2, "atelier-bridge 1.0.0"),
        SwitchSet(1, True),
        Indicate(0, SignalCode.DENIED, 2),
        Badge(0, bytes.fromhex("04A1B2C3D4E5F6")),
        Current(3, 12_345),
    ):
        kind, payload = messages.encode(message)
        assert messages.decode(kind, payload) == message


@pytest.mark.parametrize(
    ("kind", "payload", "complaint"),
    [
        (0x7E, b"", "unknown message type 0x7E"),
        (Kind.SWITCH, b"\x00\x02", r"neither 0 \(off\) nor 1 \(on\)"),
        (Kind.SWITCH, b"\x10\x01", "channel 16 is not 0 to 15"),
        (Kind.BADGE, b"\x00\x04\x01\x02", "does not hold its UID"),
        (Kind.INDICATE, b"\x00\x09\x00", "INDICATE payload"),
        (Kind.CURRENT, b"\x00\x01", "CURRENT payload of 2 bytes"),
    ],
)
def test_bad_payloads_are_refused_with_the_reason(kind: int, payload: bytes, complaint: str) -> None:
    with pytest.raises(BadMessage, match=complaint):
        messages.decode(kind, payload)


@settings(max_examples=300)
@given(kind=st.integers(0, 255), payload=st.binary(max_size=MAX_PAYLOAD))
def test_any_packet_decodes_or_is_refused_as_a_bad_message(kind: int, payload: bytes) -> None:
    with contextlib.suppress(BadMessage):
        messages.decode(kind, payload)

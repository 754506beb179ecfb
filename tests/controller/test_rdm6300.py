"""The RDM6300 reader, byte for byte against published frames, through a pty and socket://."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import parse_config
from controller.hardware.factory import build_parts
from controller.hardware.gpio import pin_factory_from_name
from controller.hardware.interfaces import (
    Announcing,
    BadgeReader,
    BadHardwareConfig,
    HardwareClosed,
    PartFailed,
)
from controller.hardware.pn532 import Pn532Reader
from controller.hardware.rdm6300 import Rdm6300Parser, Rdm6300Reader
from tests.controller.serial_peers import PtyPeer, rdm6300_frame
from tests.controller.support import machine_table

# Seeed Studio, "Grove - 125KHz RFID Reader" datasheet (SKU 113020002), "Output Data Format",
# example: card number 62E3086CED, checksum (62H) XOR (E3H) XOR (08H) XOR (6CH) XOR (EDH) = 08H,
# sent as 0x02, the ten ASCII characters, the two ASCII checksum characters, 0x03.
DATASHEET_FRAME = bytes.fromhex("02 36 32 45 33 30 38 36 43 45 44 30 38 03")
DATASHEET_UID = "62E3086CED"
# A frame posted on the Seeed Studio forum ("RDM630 - Checksum Problems"): "02 | 30 31 30 30 30
# 37 33 34 45 30 | 44 32 | 03", card 01 00 07 34 E0, "(01H) xor (00H) xor (07H) xor (34H) xor
# (E0H) = D2H".
FORUM_FRAME = bytes.fromhex("02 30 31 30 30 30 37 33 34 45 30 44 32 03")
FORUM_UID = "01000734E0"
# A capture posted on the Hobby Components forum (RDM6300 decoding thread) whose author says he
# "changed one or two bytes": 02 31 30 30 30 32 36 46 34 34 34 32 36 03. Its checksum (26H) no
# longer matches its card (10 00 26 F4 44 gives 86H): a real-world corrupt frame.
EDITED_FRAME = bytes.fromhex("02 31 30 30 30 32 36 46 34 34 34 32 36 03")


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# The parser.


def test_the_datasheet_frame_is_read() -> None:
    assert rdm6300_frame(bytes.fromhex("62E3086CED")) == DATASHEET_FRAME, (
        "our peer builds frames the same way"
    )
    assert Rdm6300Parser().feed(DATASHEET_FRAME) == [DATASHEET_UID]


def test_a_captured_frame_is_read_even_split_into_single_bytes() -> None:
    parser = Rdm6300Parser()
    uids = [uid for byte in FORUM_FRAME for uid in parser.feed(bytes((byte,)))]

    assert uids == [FORUM_UID]


def test_a_bad_checksum_is_rejected_with_a_clear_log_line(caplog: pytest.LogCaptureFixture) -> None:
    corrupt = DATASHEET_FRAME[:3] + b"D" + DATASHEET_FRAME[4:]  # 62E3... read as 62D3...
    parser = Rdm6300Parser("RDM6300 on test")

    with caplog.at_level(logging.WARNING):
        assert parser.feed(corrupt + DATASHEET_FRAME) == [DATASHEET_UID]
    assert parser.rejected == 1
    assert "RDM6300 on test: rejected a frame with a bad checksum (says 08, the data gives 38)" in caplog.text


def test_the_edited_forum_capture_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert Rdm6300Parser().feed(EDITED_FRAME) == []
    assert "bad checksum (says 26, the data gives 86)" in caplog.text


def test_a_truncated_frame_is_dropped_and_the_next_one_read(caplog: pytest.LogCaptureFixture) -> None:
    parser = Rdm6300Parser()
    with caplog.at_level(logging.WARNING):
        assert parser.feed(DATASHEET_FRAME[:7] + FORUM_FRAME) == [FORUM_UID]
    assert "rejected a truncated frame (7 of 14 bytes)" in caplog.text


@pytest.mark.parametrize(
    ("garbage", "complaint"),
    [
        (DATASHEET_FRAME[:13] + b"\x30\x03", "wrong length"),  # an extra byte before the end
        (DATASHEET_FRAME[:8] + b"\x03", "wrong length"),  # an end byte too early
        (DATASHEET_FRAME[:3] + b"G" + DATASHEET_FRAME[4:], "not hexadecimal"),
    ],
)
def test_malformed_frames_are_rejected_and_parsing_resumes(
    garbage: bytes, complaint: str, caplog: pytest.LogCaptureFixture
) -> None:
    parser = Rdm6300Parser()
    with caplog.at_level(logging.WARNING):
        assert parser.feed(b"\xff\x00noise" + garbage + DATASHEET_FRAME) == [DATASHEET_UID]
    assert complaint in caplog.text
    assert "skipped 7 bytes outside any frame" in caplog.text


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=5))
def test_random_bytes_never_raise_and_the_parser_recovers(garbage: bytes, cuts: list[int]) -> None:
    parser = Rdm6300Parser()
    pieces = [garbage[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(garbage)], strict=True)]
    for piece in pieces:
        for uid in parser.feed(piece):
            assert len(uid) == 10
    assert parser.feed(DATASHEET_FRAME) == [DATASHEET_UID], "the next good frame is read"


@settings(max_examples=200, deadline=None)
@given(
    frames=st.lists(st.sampled_from([DATASHEET_FRAME, FORUM_FRAME]), min_size=1, max_size=6), data=st.data()
)
def test_bit_flips_never_yield_a_wrong_uid(frames: list[bytes], data: st.DataObject) -> None:
    stream = bytearray(b"".join(frames))
    index = data.draw(st.integers(0, len(stream) - 1))
    stream[index] ^= 1 << data.draw(st.integers(0, 7))

    uids = Rdm6300Parser().feed(bytes(stream))

    assert set(uids) <= {DATASHEET_UID, FORUM_UID}
    assert len(uids) >= len(frames) - 2, "a flipped bit costs at most the frames it touches"


# The reader on a serial port.


@pytest.fixture
def peer() -> Iterator[PtyPeer]:
    line = PtyPeer()
    yield line
    line.close()


def test_a_card_held_on_the_reader_is_one_tap_until_it_leaves(peer: PtyPeer) -> None:
    reader = Rdm6300Reader(peer.url, debounce_s=0.3)
    heard = threading.Event()
    part: BadgeReader = reader
    assert isinstance(reader, Announcing)
    reader.set_listener(heard.set)
    try:
        for _ in range(8):  # the module repeats its frame about every 50 ms while the card is there
            peer.write(DATASHEET_FRAME)
            time.sleep(0.05)
        assert heard.wait(2)
        assert part.read() == DATASHEET_UID
        assert part.read() is None, "held on the reader: one tap"
        time.sleep(0.5)  # taken away for longer than debounce_s
        peer.write(DATASHEET_FRAME)
        assert wait_until(lambda: reader.read() == DATASHEET_UID)
    finally:
        reader.close()
    with pytest.raises(HardwareClosed):
        reader.read()


def test_another_card_is_read_at_once(peer: PtyPeer) -> None:
    reader = Rdm6300Reader(peer.url, debounce_s=5)
    try:
        peer.write(DATASHEET_FRAME + FORUM_FRAME)
        taps: list[str] = []

        def both_read() -> bool:
            uid = reader.read()
            if uid is not None:
                taps.append(uid)
            return len(taps) == 2

        assert wait_until(both_read)
        assert taps == [DATASHEET_UID, FORUM_UID]
    finally:
        reader.close()


def test_corrupt_and_cut_frames_on_the_line_never_reach_read(
    peer: PtyPeer, caplog: pytest.LogCaptureFixture
) -> None:
    reader = Rdm6300Reader(peer.url, debounce_s=0.3)
    try:
        with caplog.at_level(logging.WARNING):
            peer.write(DATASHEET_FRAME[:5])  # cut: the line then goes quiet
            time.sleep(0.2)
            peer.write(DATASHEET_FRAME.replace(b"\x36", b"\x37", 1))  # a bad checksum
            peer.write(b"\x00\xff\xfe")
            time.sleep(0.2)
            assert reader.read() is None
            peer.write(FORUM_FRAME)
            assert wait_until(lambda: reader.read() == FORUM_UID)
    finally:
        reader.close()
    assert "rejected a truncated frame (5 of 14 bytes)" in caplog.text
    assert "rejected a frame with a bad checksum" in caplog.text


def test_a_missing_port_is_a_part_failure_until_it_appears(tmp_path: object) -> None:
    reader = Rdm6300Reader("/dev/ttyATELIER-NONE")
    try:
        with pytest.raises(PartFailed, match="ttyATELIER-NONE") as raised:
            reader.read()
        assert isinstance(raised.value, OSError)
    finally:
        reader.close()


def test_a_url_that_can_never_work_is_a_configuration_error() -> None:
    with pytest.raises(BadHardwareConfig, match="serial port 'bogus://x'"):
        Rdm6300Reader("bogus://x")


def test_a_reader_on_a_socket_url() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    reader = Rdm6300Reader(f"socket://127.0.0.1:{port}", debounce_s=0.3)
    connection, _ = server.accept()
    try:
        connection.sendall(b"\x02\x41" + DATASHEET_FRAME)  # a cut frame first
        assert wait_until(lambda: reader.read() == DATASHEET_UID)
    finally:
        reader.close()
        connection.close()
        server.close()


def test_the_factory_builds_serial_readers_from_their_tables(peer: PtyPeer) -> None:
    second = PtyPeer()
    tables = [
        machine_table("sew-1", 17, reader={"type": "rdm6300", "port": peer.url, "debounce_s": 0.5}),
        machine_table("sew-2", 22, reader={"type": "pn532", "port": second.url, "poll_interval_ms": 50}),
    ]
    config = parse_config({"gateway": {"id": "gw-1", "site": "s"}, "machine": tables}, environ={})
    pins = pin_factory_from_name("mock")
    rdm = build_parts(config.machine("sew-1"), pins)
    pn = build_parts(config.machine("sew-2"), pins)
    try:
        assert isinstance(rdm.reader, Rdm6300Reader)
        assert rdm.reader.debouncer.hold_s == 0.5
        assert isinstance(pn.reader, Pn532Reader)
        assert pn.reader.poll_interval_s == 0.05
        peer.write(DATASHEET_FRAME)
        assert wait_until(lambda: rdm.reader.read() == DATASHEET_UID)
    finally:
        rdm.close()
        pn.close()
        second.close()

"""The PN532 reader in HSU mode, byte for byte against NXP's frame rules and published frames,
through a pty with a simulated PN532 on the other end."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.hardware import pn532
from controller.hardware.interfaces import BadgeReader, PartFailed
from controller.hardware.pn532 import Ack, ErrorFrame, Frame, Nack, Pn532Parser, Pn532Reader
from tests.controller.serial_peers import PtyPeer, SimulatedPn532

# NXP, PN532 User Manual UM0701-02 (rev. 02, 2007), 6.2.1: the ACK, NACK and error frames.
ACK = bytes.fromhex("00 00 FF 00 FF 00")
NACK = bytes.fromhex("00 00 FF FF 00 00")
ERROR_FRAME = bytes.fromhex("00 00 FF 01 FF 7F 81 00")
# GetFirmwareVersion as posted on the libnfc forum ("Pn531 I2C interface problem"):
# GetFirwareVersion[9] = {0x00,0x00,0xFF,0x02,0xFE,0xD4,0x02,0x2A,0x00}.
GET_FIRMWARE_VERSION = bytes.fromhex("00 00 FF 02 FE D4 02 2A 00")
# SAMConfiguration (normal mode) and InListPassiveTarget (one target, 106 kbps type A) as
# published in a PN532 command sheet ("NFC pn532 read and write command format", jinmi8.com
# doc 12721) and in a host script on GitHub: 00 00 FF 03 FD D4 14 01 17 00 and
# 00 00 FF 04 FC D4 4A 01 00 E1 00; the same sheet's answers: "00 00 FF 02 FE D5 15 16 00"
# (SAMConfiguration done) and, for a MIFARE Classic 1K card (SENS_RES 00 04, SEL_RES 08,
# NFCID1 of 4 bytes FB 0E E2 0B): "00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 FB 0E E2 0B D8 00".
SAM_CONFIGURATION = bytes.fromhex("00 00 FF 03 FD D4 14 01 17 00")
IN_LIST_PASSIVE_TARGET = bytes.fromhex("00 00 FF 04 FC D4 4A 01 00 E1 00")
SAM_DONE = bytes.fromhex("00 00 FF 02 FE D5 15 16 00")
CARD_FOUND = bytes.fromhex("00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 FB 0E E2 0B D8 00")
# GetFirmwareVersion's answer for a PN532 v1.6 (UM0701-02 7.2.2: IC 0x32, Ver 1, Rev 6,
# Support 7), framed by the rules of 6.2.1: LEN 06, LCS FA, DCS E8.
FIRMWARE_1_6 = bytes.fromhex("00 00 FF 06 FA D5 03 32 01 06 07 E8 00")
# The wake-up preamble of Adafruit's CircuitPython PN532 UART driver: 55 55 and 15 zeros.
WAKE_UP = bytes.fromhex("55 55") + bytes(15)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_through_failures(reader: BadgeReader) -> str | None:
    """A read that counts a PartFailed (the reader recovering) as nothing read yet."""
    try:
        return reader.read()
    except PartFailed:
        return None


# Frames.


def test_commands_are_framed_as_published() -> None:
    assert pn532.ACK == ACK
    assert pn532.NACK == NACK
    assert pn532.WAKE_UP == WAKE_UP
    assert pn532.frame(b"\x02") == GET_FIRMWARE_VERSION
    assert pn532.frame(b"\x14\x01") == SAM_CONFIGURATION
    assert pn532.frame(b"\x4a\x01\x00") == IN_LIST_PASSIVE_TARGET
    assert pn532.frame(b"\x03\x32\x01\x06\x07", tfi=pn532.PN532_TO_HOST) == FIRMWARE_1_6


def test_published_answers_are_parsed() -> None:
    parser = Pn532Parser()
    stream = b"\x00\x00" + ACK + SAM_DONE + ACK + CARD_FOUND + NACK + ERROR_FRAME + FIRMWARE_1_6

    events = parser.feed(stream)

    assert events == [
        Ack(),
        Frame(0xD5, bytes.fromhex("15")),
        Ack(),
        Frame(0xD5, bytes.fromhex("4B 01 01 00 04 08 04 FB 0E E2 0B")),
        Nack(),
        ErrorFrame(),
        Frame(0xD5, bytes.fromhex("03 32 01 06 07")),
    ]
    assert parser.rejected == 0


def test_frames_split_at_every_byte_are_parsed() -> None:
    parser = Pn532Parser()
    events = [event for byte in ACK + CARD_FOUND for event in parser.feed(bytes((byte,)))]

    assert events == [Ack(), Frame(0xD5, CARD_FOUND[6:-2])]


def test_an_extended_frame_is_parsed() -> None:
    data = bytes((0xD5, 0x41, 0x00)) + bytes(range(255))  # 258 bytes: too long for LEN
    lenm, lenl = divmod(len(data), 256)
    extended = (
        b"\x00\x00\xff\xff\xff"
        + bytes((lenm, lenl, -(lenm + lenl) & 0xFF))
        + data
        + bytes((-sum(data) & 0xFF, 0))
    )

    assert Pn532Parser().feed(extended) == [Frame(0xD5, data[1:])]


@pytest.mark.parametrize(
    ("corrupt", "complaint"),
    [
        (CARD_FOUND[:4] + b"\xf5" + CARD_FOUND[5:], "a bad length checksum"),
        (CARD_FOUND[:10] + b"\x05" + CARD_FOUND[11:], "a bad data checksum"),
        (CARD_FOUND[:-2] + b"\xd9\x00", "a bad data checksum"),
        (pn532.frame(b"\x4b\x00", tfi=0x42), "an unknown TFI 0x42"),
    ],
)
def test_corrupt_frames_are_rejected_and_the_next_is_found(
    corrupt: bytes, complaint: str, caplog: pytest.LogCaptureFixture
) -> None:
    parser = Pn532Parser("PN532 on test")
    with caplog.at_level(logging.WARNING):
        events = parser.feed(corrupt + SAM_DONE)
    assert events[-1] == Frame(0xD5, b"\x15")
    assert parser.rejected >= 1
    assert f"PN532 on test: rejected a frame with {complaint}" in caplog.text


def test_a_frame_cut_short_is_found_inside_the_next(caplog: pytest.LogCaptureFixture) -> None:
    parser = Pn532Parser()
    with caplog.at_level(logging.WARNING):
        events = parser.feed(CARD_FOUND[:12] + FIRMWARE_1_6)
    assert events == [Frame(0xD5, bytes.fromhex("03 32 01 06 07"))]
    assert "bad data checksum" in caplog.text


def test_a_truncated_frame_at_the_end_is_dropped_on_reset(caplog: pytest.LogCaptureFixture) -> None:
    parser = Pn532Parser()
    assert parser.feed(CARD_FOUND[:9]) == []
    with caplog.at_level(logging.WARNING):
        parser.reset()
    assert "rejected a truncated frame: 00 ff 0c f4 d5 4b 01" in caplog.text
    assert parser.feed(ACK) == [Ack()]


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=400))
def test_random_bytes_never_raise_and_the_parser_recovers(garbage: bytes) -> None:
    parser = Pn532Parser()
    for event in parser.feed(garbage):
        assert isinstance(event, Ack | Nack | ErrorFrame | Frame)
    parser.reset()  # what the reader does when the chip goes quiet
    assert parser.feed(CARD_FOUND) == [Frame(0xD5, CARD_FOUND[6:-2])]


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=400))
def test_random_bytes_never_stall_the_parser_for_long(garbage: bytes) -> None:
    parser = Pn532Parser()
    parser.feed(garbage)
    found = [event for _ in range(20) for event in parser.feed(CARD_FOUND)]
    assert Frame(0xD5, CARD_FOUND[6:-2]) in found, "a half frame holds at most 273 bytes back"


# The reader, with a simulated PN532 on a pty.


@pytest.fixture
def chip() -> Iterator[SimulatedPn532]:
    peer = PtyPeer()
    simulated = SimulatedPn532(peer)
    yield simulated
    simulated.close()
    peer.close()


@pytest.fixture
def reader(chip: SimulatedPn532) -> Iterator[Pn532Reader]:
    part = Pn532Reader(chip.peer.url, debounce_s=0.3, poll_interval_s=0.02, answer_timeout_s=0.3)
    yield part
    part.close()


def test_the_reader_wakes_and_configures_the_chip_byte_for_byte(
    chip: SimulatedPn532, reader: Pn532Reader
) -> None:
    assert wait_until(lambda: chip.polls() >= 1)
    sent = bytes(chip.peer.received)

    rf_configuration = pn532.frame(bytes.fromhex("32 05 FF 01 02"))
    assert rf_configuration == bytes.fromhex("00 00 FF 06 FA D4 32 05 FF 01 02 F3 00")
    assert sent.startswith(WAKE_UP + SAM_CONFIGURATION + rf_configuration + GET_FIRMWARE_VERSION)
    assert sent[len(WAKE_UP + SAM_CONFIGURATION + rf_configuration + GET_FIRMWARE_VERSION) :].startswith(
        IN_LIST_PASSIVE_TARGET
    )
    assert reader.firmware == (0x32, 1, 6)


def test_a_card_held_on_the_reader_is_one_tap_until_it_leaves(
    chip: SimulatedPn532, reader: Pn532Reader
) -> None:
    part: BadgeReader = reader
    chip.card = bytes.fromhex("FB0EE20B")
    assert wait_until(lambda: part.read() == "FB0EE20B")
    polls = chip.polls()
    assert wait_until(lambda: chip.polls() >= polls + 10)
    assert part.read() is None, "still on the antenna: no second tap"
    chip.card = None
    polls = chip.polls()
    assert wait_until(lambda: chip.polls() >= polls + 3)
    time.sleep(0.35)
    chip.card = bytes.fromhex("04A1B2C3D4E5F6")  # a 7-byte UID (NTAG, Ultralight)
    assert wait_until(lambda: part.read() == "04A1B2C3D4E5F6")


def test_a_corrupt_answer_is_asked_for_again_with_a_nack(
    chip: SimulatedPn532, reader: Pn532Reader, caplog: pytest.LogCaptureFixture
) -> None:
    assert wait_until(lambda: chip.polls() >= 1)
    with caplog.at_level(logging.WARNING):
        chip.mangle = lambda wire: wire[:-2] + bytes(((wire[-2] + 1) & 0xFF,)) + wire[-1:]  # bad DCS
        chip.card = bytes.fromhex("FB0EE20B")
        assert wait_until(lambda: reader.read() == "FB0EE20B")
    assert chip.nacks == 1
    assert NACK in bytes(chip.peer.received)
    assert "rejected a frame with a bad data checksum" in caplog.text


def test_a_silent_chip_is_resynchronised_and_woken_again(
    chip: SimulatedPn532, reader: Pn532Reader, caplog: pytest.LogCaptureFixture
) -> None:
    assert wait_until(lambda: chip.polls() >= 1)
    with caplog.at_level(logging.WARNING):
        chip.silent = True
        received = len(chip.peer.received)
        # Three unanswered polls, each aborted with an ACK, then the wake-up sequence again.
        assert wait_until(lambda: WAKE_UP in bytes(chip.peer.received[received:]), timeout=10)
        assert bytes(chip.peer.received[received:]).count(ACK) >= 3
        chip.silent = False
        chip.card = bytes.fromhex("FB0EE20B")
        assert wait_until(lambda: read_through_failures(reader) == "FB0EE20B", timeout=10)
    assert "no answer to command 0x4A within 0.3 s; resynchronising" in caplog.text


def test_an_error_frame_or_a_stray_answer_never_reaches_read(
    chip: SimulatedPn532, reader: Pn532Reader
) -> None:
    assert wait_until(lambda: chip.polls() >= 1)
    chip.mangle = lambda wire: ERROR_FRAME
    chip.peer.write(SAM_DONE)  # an answer nobody asked for
    polls = chip.polls()
    assert wait_until(lambda: chip.polls() >= polls + 3)
    assert reader.read() is None
    chip.card = bytes.fromhex("FB0EE20B")
    assert wait_until(lambda: reader.read() == "FB0EE20B")


def test_a_chip_that_never_answers_is_a_part_failure() -> None:
    peer = PtyPeer()  # nothing answers on it
    reader = Pn532Reader(peer.url, answer_timeout_s=0.1)
    try:

        def failed() -> bool:
            try:
                reader.read()
            except PartFailed:
                return True
            return False

        assert wait_until(failed)
        with pytest.raises(PartFailed, match="no answer to command 0x14"):
            reader.read()
    finally:
        reader.close()
        peer.close()

"""The NXP PN532 13.56 MHz reader (ISO 14443A: MIFARE Classic, Ultralight, NTAG, DESFire)
on its HSU (high-speed UART) interface, 115200 baud 8N1.

Frames follow NXP's PN532 User Manual (UM0701-02, section 6.2.1):

    information frame: 00 | 00 FF | LEN | LCS | TFI | PD0 ... PDn | DCS | 00
        LEN counts TFI and the data; LEN + LCS = 0x00 and TFI + PD0 + ... + PDn + DCS = 0x00
        (mod 256). TFI is D4 from the host, D5 from the PN532.
    extended frame:    00 | 00 FF | FF FF | LENM LENL | LCS | TFI | ... | DCS | 00
    ACK:               00 00 FF 00 FF 00
    NACK:              00 00 FF FF 00 00 (the host asks for the last response again)
    error frame:       00 00 FF 01 FF 7F 81 00 (the PN532 could not parse a command)

Each command is answered by an ACK and then a response whose code is the command's + 1.
The reader wakes the chip from its power-down with 0x55 0x55 and zeros (section
6.2.2: HSU wake-up), configures the SAM in normal mode (SAMConfiguration, 0x14),
limits the passive activation retries (RFConfiguration item 5, 0x32) so that a poll
without a card returns at once, checks the firmware (GetFirmwareVersion, 0x02), then
polls with InListPassiveTarget (0x4A, one target, 106 kbps type A) and reports the
target's NFCID1 (its UID: 4, 7 or 10 bytes) as upper-case hex.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from controller.hardware.interfaces import PartFailed
from controller.hardware.serialport import Port, QuietLog, SerialBadgeReader

log = logging.getLogger(__name__)

BAUDRATE = 115200
HOST_TO_PN532 = 0xD4
PN532_TO_HOST = 0xD5
START = b"\x00\xff"
ACK = bytes.fromhex("0000ff00ff00")
NACK = bytes.fromhex("0000ffff0000")
WAKE_UP = b"\x55\x55" + bytes(15)  # a long preamble: HSU wake-up
MAX_FRAME_DATA = 265
"""TFI and data bytes an extended frame may carry (UM0701-02: up to 264 data bytes)."""
MAX_BUFFER = 600
"""Bytes kept while looking for a frame; beyond that the oldest are noise."""

GET_FIRMWARE_VERSION = 0x02
SAM_CONFIGURATION = 0x14
RF_CONFIGURATION = 0x32
IN_LIST_PASSIVE_TARGET = 0x4A
UID_LENGTHS = (4, 7, 10)  # ISO 14443-3: single, double and triple size NFCID1


def frame(data: bytes, tfi: int = HOST_TO_PN532) -> bytes:
    """The normal information frame carrying ``tfi`` and ``data`` (the command code and its parameters)."""
    body = bytes((tfi,)) + data
    if len(body) > 255:
        raise ValueError(f"a normal frame carries at most 254 data bytes, not {len(data)}")
    return b"\x00" + START + bytes((len(body), -len(body) & 0xFF)) + body + bytes((-sum(body) & 0xFF, 0x00))


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class Nack:
    pass


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """The PN532's "syntax error" frame (TFI 0x7F)."""


@dataclass(frozen=True, slots=True)
class Frame:
    tfi: int
    data: bytes  # the command or response code, then its parameters

    @property
    def code(self) -> int:
        return self.data[0] if self.data else -1


Event = Ack | Nack | ErrorFrame | Frame


class Pn532Parser:
    """Bytes in, frames out, in either direction (the reader and a simulated PN532 both use it).

    A frame whose length or data checksum is wrong is logged and dropped, and the search
    for a start code resumes just after the bad one, so a frame hidden inside a truncated
    one is still found.
    """

    def __init__(self, name: str = "PN532", quiet: QuietLog | None = None) -> None:
        self.name = name
        self._quiet = quiet or QuietLog(log)
        self._buffer = bytearray()
        self.rejected = 0

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        events: list[Event] = []
        while True:
            event, consumed = self._next()
            if consumed:
                del self._buffer[:consumed]
            if event is None:
                if not consumed:
                    break
                continue
            events.append(event)
        if len(self._buffer) > MAX_BUFFER:
            self._reject("noise", f"{len(self._buffer) - MAX_BUFFER} bytes of noise")
            del self._buffer[:-MAX_BUFFER]
        return events

    def reset(self) -> None:
        """Drop what is buffered: a frame cut short will never be completed."""
        start = self._buffer.find(START)
        if start >= 0 and len(self._buffer) > start + 2:
            self._reject("truncated", f"a truncated frame: {bytes(self._buffer[start:]).hex(' ')}")
        self._buffer.clear()

    def _next(self) -> tuple[Event | None, int]:
        """The next event in the buffer and the bytes it used; (None, n>0) skips n bytes of
        noise or a bad frame; (None, 0) waits for more bytes."""
        buffer = self._buffer
        start = buffer.find(START)
        if start < 0:
            # Keep a last 0x00: it may be the first half of a start code.
            return None, len(buffer) - (1 if buffer.endswith(b"\x00") else 0)
        if start > 0:
            return None, start  # preamble or noise before the start code
        try:
            return self._frame_at_start()
        except _BadFrame as bad:
            self._reject(bad.kind, bad.what)
            return None, bad.skip

    def _frame_at_start(self) -> tuple[Event | None, int]:
        buffer = self._buffer
        if len(buffer) < 4:
            return None, 0
        length, check, header = buffer[2], buffer[3], 4
        if (length, check) in ((0x00, 0xFF), (0xFF, 0x00)):
            return (Ack() if length == 0 else Nack()), 4 + self._postamble(4)
        if (length, check) == (0xFF, 0xFF):
            if len(buffer) < 7:
                return None, 0
            length, check, header = buffer[4] << 8 | buffer[5], buffer[6], 7
            if (buffer[4] + buffer[5] + check) & 0xFF:
                raise _BadFrame(
                    "length", f"an extended frame with a bad length checksum: {bytes(buffer[:7]).hex(' ')}"
                )
        elif (length + check) & 0xFF:
            raise _BadFrame("length", f"a frame with a bad length checksum: {bytes(buffer[:4]).hex(' ')}")
        if length == 0 or length > MAX_FRAME_DATA:
            raise _BadFrame("length", f"an extended frame of length {length}")
        end = header + length + 1  # the data, then DCS
        if len(buffer) < end:
            return None, 0
        body = bytes(buffer[header : header + length])
        if (sum(body) + buffer[end - 1]) & 0xFF:
            raise _BadFrame("checksum", f"a frame with a bad data checksum: {bytes(buffer[:end]).hex(' ')}")
        used = end + self._postamble(end)
        if body == b"\x7f":
            return ErrorFrame(), used
        if body[0] not in (HOST_TO_PN532, PN532_TO_HOST):
            raise _BadFrame("tfi", f"a frame with an unknown TFI 0x{body[0]:02X}", skip=used)
        return Frame(body[0], body[1:]), used

    def _postamble(self, at: int) -> int:
        return 1 if len(self._buffer) > at and self._buffer[at] == 0x00 else 0

    def _reject(self, kind: str, what: str) -> None:
        self.rejected += 1
        self._quiet.warning(kind, "%s: rejected %s", self.name, what)


class _BadFrame(Exception):
    def __init__(self, kind: str, what: str, skip: int = 2) -> None:
        super().__init__(what)
        self.kind, self.what, self.skip = kind, what, skip


class NoAnswer(PartFailed):
    """The PN532 did not answer a command in time."""


class Pn532Reader(SerialBadgeReader):
    """A PN532 board in HSU mode (its switches or jumpers on "UART"/"HSU") on ``url``."""

    chip = "PN532"

    def __init__(
        self,
        url: str,
        *,
        debounce_s: float = 1.0,
        poll_interval_s: float = 0.1,
        answer_timeout_s: float = 1.0,
        baudrate: int = BAUDRATE,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.parser = Pn532Parser(f"PN532 on {url}")
        self.poll_interval_s = poll_interval_s
        self.answer_timeout_s = answer_timeout_s
        self.firmware: tuple[int, int, int] | None = None
        """IC, version and revision from GetFirmwareVersion (0x32, 1, 6 for a PN532 v1.6)."""
        self._events: list[Event] = []
        self._rejections_seen = 0
        self._misses = 0
        if monotonic is None:
            super().__init__(url, baudrate=baudrate, debounce_s=debounce_s, read_timeout_s=0.02)
        else:
            super().__init__(
                url, baudrate=baudrate, debounce_s=debounce_s, read_timeout_s=0.02, monotonic=monotonic
            )

    def greet(self, port: Port) -> None:
        self.forget()
        port.write(WAKE_UP)
        self.call(port, SAM_CONFIGURATION, b"\x01")  # normal mode: the SAM is not used
        # MxRtyATR 0xFF (default), MxRtyPSL 0x01 (default), MxRtyPassiveActivation 0x02: a poll
        # without a card answers "no target" after two tries instead of waiting for one forever.
        self.call(port, RF_CONFIGURATION, bytes((0x05, 0xFF, 0x01, 0x02)))
        version = self.call(port, GET_FIRMWARE_VERSION, b"")
        if len(version) >= 4:
            self.firmware = (version[0], version[1], version[2])
            log.info("PN532 on %s: IC 0x%02X, firmware %d.%d", self.url, version[0], version[1], version[2])

    def listen(self, port: Port) -> None:
        try:
            answer = self.call(port, IN_LIST_PASSIVE_TARGET, bytes((0x01, 0x00)))
        except NoAnswer as error:
            self._misses += 1
            self.quiet.warning("timeout", "PN532 on %s: %s; resynchronising", self.url, error)
            port.write(ACK)  # an ACK from the host aborts the command in progress (UM0701-02 6.2.1.3)
            self.forget()
            if self._misses >= 3:
                self._misses = 0
                self.greet(port)  # it may have reset or gone back to sleep: wake it again
            return
        self._misses = 0
        uid = self._target_uid(answer)
        if uid is not None:
            self.heard(uid)
        self._closing.wait(self.poll_interval_s)

    def _target_uid(self, answer: bytes) -> str | None:
        # NbTg, then for each target: Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1...
        if not answer or answer[0] == 0:
            return None
        if len(answer) < 6:
            self.quiet.warning(
                "target", "PN532 on %s: a target description too short: %s", self.url, answer.hex(" ")
            )
            return None
        length = answer[5]
        uid = answer[6 : 6 + length]
        if length not in UID_LENGTHS or len(uid) != length:
            self.quiet.warning(
                "target", "PN532 on %s: a target with an unusable UID: %s", self.url, answer.hex(" ")
            )
            return None
        return uid.hex().upper()

    def forget(self) -> None:
        self.parser.reset()
        self._events.clear()

    # Commands.

    def call(self, port: Port, command: int, parameters: bytes) -> bytes:
        """Send ``command``, wait for its ACK and its response; the response's parameters."""
        request = frame(bytes((command,)) + parameters)
        port.write(request)
        deadline = time.monotonic() + self.answer_timeout_s
        self._rejections_seen = self.parser.rejected
        nacked = False
        while True:
            event = self._next_event(port, deadline, command)
            if event is None:
                # The response came corrupted: ask for it once more, as NXP's frame rules allow.
                if not nacked:
                    nacked = True
                    port.write(NACK)
            elif isinstance(event, Ack):
                continue
            elif isinstance(event, Nack):
                self.quiet.warning("nack", "PN532 on %s: NACK received; sending the command again", self.url)
                port.write(request)
            elif isinstance(event, ErrorFrame):
                raise NoAnswer(f"PN532 on {self.url} refused command 0x{command:02X} (syntax error frame)")
            elif event.tfi != PN532_TO_HOST or event.code != command + 1:
                self.quiet.warning(
                    "unexpected",
                    "PN532 on %s: ignored an unexpected frame %s while waiting for 0x%02X",
                    self.url,
                    event.data.hex(" "),
                    command + 1,
                )
            else:
                return event.data[1:]

    def _next_event(self, port: Port, deadline: float, command: int) -> Event | None:
        """The next frame from the PN532, or None when a corrupt one was just dropped."""
        while not self._events:
            if self.parser.rejected > self._rejections_seen:
                self._rejections_seen = self.parser.rejected
                return None
            if time.monotonic() > deadline:
                raise NoAnswer(f"no answer to command 0x{command:02X} within {self.answer_timeout_s:.1f} s")
            if self._closing.is_set():
                raise serial.SerialException("the reader is closing")
            data = port.read(max(1, port.in_waiting))
            if data:
                self._events.extend(self.parser.feed(data))
        return self._events.pop(0)

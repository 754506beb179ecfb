"""The RDM6300 125 kHz reader (EM4100 cards and key fobs) on a serial port.

The module sends, at 9600 baud 8N1 and about every 50 ms while a card is in
its field, a 14-byte frame (Seeed Studio, "125 kHz RFID Reader" datasheet,
"Output Data Format"):

    0x02 | 10 ASCII hex characters: the card's 5 bytes | 2 ASCII hex: XOR of those 5 bytes | 0x03

The badge UID is the 10 hex characters, upper-cased ("62E3086CED"). The number
printed on a card is usually the decimal of its last 4 bytes; the server's badge
list holds the hex form, which is what the reader sees.

The module only talks: nothing is ever written to it.
"""

import logging
from collections.abc import Callable

from controller.hardware.serialport import Port, QuietLog, SerialBadgeReader

log = logging.getLogger(__name__)

STX = 0x02
ETX = 0x03
FRAME_BYTES = 14
BAUDRATE = 9600
_HEX = frozenset(b"0123456789ABCDEFabcdef")


class Rdm6300Parser:
    """Bytes in, card UIDs out. A corrupt, truncated or overlong frame is logged and
    dropped, and parsing starts again at the next 0x02 (which never occurs inside a
    frame: its body is ASCII)."""

    def __init__(self, name: str = "RDM6300", quiet: QuietLog | None = None) -> None:
        self.name = name
        self._quiet = quiet or QuietLog(log)
        self._frame = bytearray()
        self._stray = 0
        self.rejected = 0
        """Frames rejected so far (for tests and the bench)."""

    def feed(self, data: bytes) -> list[str]:
        uids: list[str] = []
        for byte in data:
            if byte == STX:
                if self._frame:
                    self._reject(
                        "truncated", f"a truncated frame ({len(self._frame)} of {FRAME_BYTES} bytes)"
                    )
                self._frame = bytearray((STX,))
            elif not self._frame:
                self._stray += 1  # line noise between frames; counted, reported with the next frame
            else:
                self._frame.append(byte)
                if byte == ETX or len(self._frame) >= FRAME_BYTES:
                    uid = self._finish(bytes(self._frame))
                    self._frame.clear()
                    if uid is not None:
                        uids.append(uid)
        return uids

    def reset(self) -> None:
        """Drop a half-received frame (the port was closed or went quiet)."""
        if self._frame:
            self._reject("truncated", f"a truncated frame ({len(self._frame)} of {FRAME_BYTES} bytes)")
        self._frame.clear()

    def _finish(self, frame: bytes) -> str | None:
        if self._stray:
            self._quiet.warning("stray", "%s: skipped %d bytes outside any frame", self.name, self._stray)
            self._stray = 0
        if len(frame) != FRAME_BYTES or frame[-1] != ETX:
            self._reject("length", f"a frame of the wrong length or without its end byte: {frame.hex(' ')}")
            return None
        body = frame[1:13]
        if not all(byte in _HEX for byte in body):
            self._reject("hex", f"a frame that is not hexadecimal: {frame.hex(' ')}")
            return None
        card = bytes.fromhex(body[:10].decode("ascii"))
        checksum = int(body[10:12], 16)
        expected = 0
        for byte in card:
            expected ^= byte
        if checksum != expected:
            self._reject(
                "checksum",
                f"a frame with a bad checksum (says {checksum:02X}, the data gives {expected:02X}): {frame.hex(' ')}",
            )
            return None
        return card.hex().upper()

    def _reject(self, kind: str, what: str) -> None:
        self.rejected += 1
        self._quiet.warning(kind, "%s: rejected %s", self.name, what)


class Rdm6300Reader(SerialBadgeReader):
    """An RDM6300 on ``url`` (``/dev/serial0`` on a Pi's GPIO UART, or a USB adapter)."""

    chip = "RDM6300"

    def __init__(
        self,
        url: str,
        *,
        debounce_s: float = 1.0,
        baudrate: int = BAUDRATE,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.parser = Rdm6300Parser(f"RDM6300 on {url}")
        if monotonic is None:
            super().__init__(url, baudrate=baudrate, debounce_s=debounce_s)
        else:
            super().__init__(url, baudrate=baudrate, debounce_s=debounce_s, monotonic=monotonic)

    def listen(self, port: Port) -> None:
        data = port.read(max(1, port.in_waiting))
        if not data:
            # A whole read timeout of silence: a half frame will not be completed.
            self.parser.reset()
            return
        for uid in self.parser.feed(data):
            self.heard(uid)

    def forget(self) -> None:
        self.parser.reset()

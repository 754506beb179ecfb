"""The far end of a serial line, for tests: a pty whose slave the driver opens by path
(pyserial's real POSIX backend), and chips that answer on the master side."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable

from controller.hardware import pn532


class PtyPeer:
    """A pseudo-terminal pair. The driver opens :attr:`url`; the test writes and reads the master."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        # Raw before the driver opens it: no echo, no CR/LF translation, not even for an instant.
        tty.setraw(self._slave)
        self.url = os.ttyname(self._slave)
        self.received = bytearray()
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read(self, timeout: float = 0.5) -> bytes:
        """What the driver wrote, waiting up to ``timeout`` for the first byte."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return b""
        with self._lock:
            self.received += data
        return data

    def read_until(self, wanted: bytes, timeout: float = 5.0) -> bytes:
        """Read until what was received so far contains ``wanted``; everything received."""
        deadline = time.monotonic() + timeout
        while wanted not in self.received and time.monotonic() < deadline:
            self.read(0.05)
        return bytes(self.received)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def rdm6300_frame(card: bytes) -> bytes:
    """The 14 bytes an RDM6300 sends for a 5-byte card."""
    checksum = 0
    for byte in card:
        checksum ^= byte
    return b"\x02" + card.hex().upper().encode() + f"{checksum:02X}".encode() + b"\x03"


class SimulatedPn532:
    """A PN532 in HSU mode on a pty: it answers SAMConfiguration, RFConfiguration,
    GetFirmwareVersion and InListPassiveTarget as the chip does, with an ACK first.

    ``card`` is the UID of the card on the antenna (None: no card). ``mangle`` may rewrite
    the next response (to corrupt or cut it); ``silent`` makes it stop answering.
    """

    def __init__(self, peer: PtyPeer) -> None:
        self.peer = peer
        self.card: bytes | None = None
        self.sens_res = b"\x00\x04"
        self.sel_res = 0x08
        self.silent = False
        self.mangle: Callable[[bytes], bytes] | None = None
        self.commands: list[bytes] = []
        self.nacks = 0
        self._last_response = b""
        self._parser = pn532.Pn532Parser("simulated PN532 (host side)")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def polls(self) -> int:
        return sum(1 for command in self.commands if command[:1] == b"\x4a")

    def _serve(self) -> None:
        while not self._stop.is_set():
            data = self.peer.read(0.05)
            if not data:
                continue
            for event in self._parser.feed(data):
                self._answer(event)

    def _answer(self, event: pn532.Event) -> None:
        if isinstance(event, pn532.Nack):
            self.nacks += 1
            self.peer.write(self._last_response)
            return
        if not isinstance(event, pn532.Frame) or self.silent:
            return
        self.commands.append(event.data)
        response = self._response(event.data)
        self.peer.write(pn532.ACK)
        wire = pn532.frame(response, tfi=pn532.PN532_TO_HOST) if response else b""
        self._last_response = wire
        if self.mangle is not None:
            mangle, self.mangle = self.mangle, None
            wire = mangle(wire)
        self.peer.write(wire)

    def _response(self, command: bytes) -> bytes:
        code = command[0]
        if code == pn532.GET_FIRMWARE_VERSION:
            return bytes((0x03, 0x32, 0x01, 0x06, 0x07))
        if code == pn532.IN_LIST_PASSIVE_TARGET:
            if self.card is None:
                return b"\x4b\x00"
            return b"\x4b\x01\x01" + self.sens_res + bytes((self.sel_res, len(self.card))) + self.card
        return bytes((code + 1,))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

"""Packets and frames of the bridge protocol (docs/firmware-protocol.md, "Frames").

A packet is ``type (1) | seq (1) | payload (0-64) | CRC-16/CCITT-FALSE of the preceding
bytes (2, big-endian)``. On the wire it is COBS-encoded and followed by one 0x00.
"""

import logging
from dataclasses import dataclass

from firmware_bridge import cobs
from firmware_bridge.crc import crc16
from firmware_bridge.errors import BadFrame

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64
MIN_PACKET = 4  # type, seq, CRC
MAX_PACKET = 2 + MAX_PAYLOAD + 2
MAX_ENCODED = MAX_PACKET + 1 + MAX_PACKET // 254  # COBS adds one byte per 254
DELIMITER = b"\x00"


@dataclass(frozen=True, slots=True)
class Packet:
    kind: int
    seq: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not (0 <= self.kind <= 255 and 0 <= self.seq <= 255):
            raise BadFrame(f"type and seq are bytes, not {self.kind} and {self.seq}")
        if len(self.payload) > MAX_PAYLOAD:
            raise BadFrame(f"a payload is at most {MAX_PAYLOAD} bytes, not {len(self.payload)}")


def pack(packet: Packet) -> bytes:
    """The bytes on the wire for ``packet``, delimiter included."""
    body = bytes((packet.kind, packet.seq)) + packet.payload
    return cobs.encode(body + crc16(body).to_bytes(2, "big")) + DELIMITER


def unpack(encoded: bytes) -> Packet:
    """The packet in one frame (without its delimiter); :class:`BadFrame` says what is wrong."""
    if len(encoded) > MAX_ENCODED:
        raise BadFrame(f"a frame of {len(encoded)} bytes, longer than any packet")
    packet = cobs.decode(encoded)
    if len(packet) < MIN_PACKET:
        raise BadFrame(f"a packet of {len(packet)} bytes, shorter than type, seq and CRC")
    body, sent = packet[:-2], int.from_bytes(packet[-2:], "big")
    computed = crc16(body)
    if sent != computed:
        raise BadFrame(f"a bad CRC (the frame says {sent:04X}, its bytes give {computed:04X})")
    return Packet(body[0], body[1], body[2:])


class Deframer:
    """Bytes in, packets out. A bad frame is logged and dropped; the next delimiter starts afresh."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._buffer = bytearray()
        self._discarding = False
        self.rejected = 0

    def feed(self, data: bytes) -> list[Packet]:
        packets: list[Packet] = []
        for chunk_end in _split_keep(data):
            if chunk_end is None:
                continue
            chunk, complete = chunk_end
            if self._discarding:
                if complete:
                    self._discarding = False
                continue
            self._buffer += chunk
            if not complete:
                if len(self._buffer) > MAX_ENCODED:
                    self.reject(
                        f"{len(self._buffer)} bytes without a delimiter (a frame is at most {MAX_ENCODED})"
                    )
                    self._buffer.clear()
                    self._discarding = True
                continue
            encoded = bytes(self._buffer)
            self._buffer.clear()
            if not encoded:
                continue  # idle delimiters between frames are allowed
            try:
                packets.append(unpack(encoded))
            except BadFrame as error:
                self.reject(str(error))
        return packets

    def reset(self) -> None:
        if self._buffer:
            self.reject(f"a truncated frame ({len(self._buffer)} bytes, no delimiter)")
        self._buffer.clear()
        self._discarding = False

    def reject(self, what: str) -> None:
        self.rejected += 1
        log.warning("%s: rejected %s", self.name, what)


def _split_keep(data: bytes) -> list[tuple[bytes, bool] | None]:
    """``data`` cut after each delimiter: (bytes before it, True), then the rest (rest, False)."""
    pieces: list[tuple[bytes, bool] | None] = []
    start = 0
    while True:
        end = data.find(DELIMITER, start)
        if end < 0:
            if start < len(data):
                pieces.append((data[start:], False))
            return pieces
        pieces.append((data[start:end], True))
        start = end + 1

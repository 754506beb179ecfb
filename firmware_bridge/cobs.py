"""Consistent Overhead Byte Stuffing (Cheshire and Baker, IEEE/ACM Transactions on
Networking, 1999): the encoded bytes never contain 0x00, so 0x00 can end each frame and
a receiver resynchronises at the next one, whatever came before it."""

from firmware_bridge.errors import BadFrame


def encode(data: bytes) -> bytes:
    """``data`` with its zeros removed: each run is preceded by its length + 1 (at most 0xFF).

    As in the paper: a run of 254 non-zero bytes is coded 0xFF and implies no zero, and
    when the data ends right after one, no empty final block follows.
    """
    out = bytearray()
    block = bytearray()
    full = False  # the last block written was a 0xFF one and nothing came after it
    for byte in data:
        full = False
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
                full = True
    if not full:
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def decode(data: bytes) -> bytes:
    """The bytes :func:`encode` made ``data`` from; :class:`BadFrame` if it could not have."""
    out = bytearray()
    index = 0
    while index < len(data):
        code = data[index]
        if code == 0:
            raise BadFrame("a zero byte inside a COBS block")
        end = index + code
        if end > len(data):
            raise BadFrame(f"a COBS block of {code - 1} bytes runs past the end of the frame")
        block = data[index + 1 : end]
        if 0 in block:
            raise BadFrame("a zero byte inside a COBS block")
        out += block
        index = end
        if code != 0xFF and index < len(data):
            out.append(0)
    return bytes(out)

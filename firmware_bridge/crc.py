"""CRC-16/CCITT-FALSE, the frame check of the bridge protocol (docs/firmware-protocol.md).

Parameters (Rocksoft model, as catalogued by Greg Cook's "Catalogue of parametrised CRC
algorithms" under CRC-16/IBM-3740, alias CRC-16/CCITT-FALSE): width 16, poly 0x1021,
init 0xFFFF, refin false, refout false, xorout 0x0000, check 0x29B1 (the CRC of the
ASCII bytes "123456789"). Sent big-endian, high byte first.
"""

POLY = 0x1021
INIT = 0xFFFF
CHECK = 0x29B1
"""crc16(b"123456789")"""


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _table()


def crc16(data: bytes, crc: int = INIT) -> int:
    """The CRC-16/CCITT-FALSE of ``data`` (continue a running one with ``crc``)."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc

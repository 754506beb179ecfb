"""A serial port by pyserial URL (``/dev/ttyACM0``, ``socket://host:port``, ``loop://``), 115200 8N1."""

from typing import Protocol, cast

import serial


class Port(Protocol):
    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


def open_port(url: str, baudrate: int = 115200) -> Port:
    """Open ``url``; ValueError for a URL that can never work, serial.SerialException (an
    OSError) for a port that is not there now."""
    return cast(Port, serial.serial_for_url(url, baudrate=baudrate, timeout=0.01, write_timeout=1.0))

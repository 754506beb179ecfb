"""The gateway's two clocks, injected so that tests and simulations can drive time.

Durations (running minutes, idle time, timeouts) are measured on the monotonic
clock only: the wall clock of a Raspberry Pi without a real-time clock jumps
when NTP first syncs after boot, and a jump must never bill or lose a minute.
The wall clock only stamps events (``*_at_ms``) for people to read.
"""

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (origin unspecified)."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    """The real clocks of the machine the gateway runs on."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to: for tests and scripted demos.

    The wall clock follows the monotonic one from ``wall_origin_ms``, as a real
    clock does between NTP corrections.
    """

    def __init__(self, start: float = 1000.0, wall_origin_ms: int = 1_700_000_000_000) -> None:
        self._lock = threading.Lock()
        self._now = start
        self._wall_origin_ms = wall_origin_ms - round(start * 1000)

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def wall_ms(self) -> int:
        with self._lock:
            return self._wall_origin_ms + round(self._now * 1000)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock never goes backwards")
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        with self._lock:
            if now < self._now:
                raise ValueError("a monotonic clock never goes backwards")
            self._now = now

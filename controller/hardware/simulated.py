"""Simulated parts for tests and the demo: a badge reader you tap from code,
a current clamp you set from code, a button you press from code. All are
thread-safe, since the demo or a test drives them from another thread than
the gateway's worker.
"""

import random
import re
import threading
from collections import deque
from collections.abc import Callable

from controller.hardware.interfaces import BadHardwareConfig, HardwareClosed

_BADGE_UID = re.compile(r"^[0-9A-Fa-f]{4,32}$")


class SimulatedBadgeReader:
    """A badge reader whose taps come from :meth:`tap`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taps: deque[str] = deque()
        self._listener: Callable[[], None] | None = None
        self._closed = False

    def tap(self, uid: str) -> None:
        """A badge is held to the reader: it will be read once."""
        if not _BADGE_UID.match(uid):
            raise BadHardwareConfig(f"a badge UID is 4 to 32 hex digits, not {uid!r}")
        with self._lock:
            if self._closed:
                raise HardwareClosed("this badge reader is closed")
            self._taps.append(uid.upper())
            listener = self._listener
        if listener is not None:
            listener()

    def read(self) -> str | None:
        with self._lock:
            if self._closed:
                raise HardwareClosed("this badge reader is closed")
            return self._taps.popleft() if self._taps else None

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        with self._lock:
            self._listener = listener

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._taps.clear()
            self._listener = None


class SimulatedCurrentSource:
    """A current clamp whose reading is set by :meth:`set_amps`.

    ``noise_a`` adds uniform noise of that amplitude to each reading, as a real
    clamp and ADC do, to exercise the hysteresis; a reading is never negative.
    """

    def __init__(self, amps: float = 0.0, *, noise_a: float = 0.0, seed: int | None = None) -> None:
        if noise_a < 0:
            raise BadHardwareConfig(f"noise_a must be 0 or more, not {noise_a}")
        self._lock = threading.Lock()
        self._amps = self._checked(amps)
        self._noise_a = noise_a
        self._random = random.Random(seed)
        self._closed = False

    @staticmethod
    def _checked(amps: float) -> float:
        if not 0 <= amps <= 1000:
            raise BadHardwareConfig(f"a simulated current is 0 to 1000 A, not {amps}")
        return float(amps)

    def set_amps(self, amps: float) -> None:
        """The machine now draws ``amps`` (RMS)."""
        with self._lock:
            self._amps = self._checked(amps)

    def amps(self) -> float:
        with self._lock:
            if self._closed:
                raise HardwareClosed("this current sensor is closed")
            if not self._noise_a:
                return self._amps
            return max(0.0, self._amps + self._random.uniform(-self._noise_a, self._noise_a))

    def close(self) -> None:
        with self._lock:
            self._closed = True


class SimulatedButton:
    """A push button pressed by :meth:`press`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._presses = 0
        self._listener: Callable[[], None] | None = None
        self._closed = False

    def press(self) -> None:
        """The button is pressed (and released): it will be read once."""
        with self._lock:
            if self._closed:
                raise HardwareClosed("this button is closed")
            self._presses += 1
            listener = self._listener
        if listener is not None:
            listener()

    def pressed(self) -> bool:
        with self._lock:
            if self._closed:
                raise HardwareClosed("this button is closed")
            if not self._presses:
                return False
            self._presses -= 1
            return True

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        with self._lock:
            self._listener = listener

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._presses = 0
            self._listener = None

"""What the serial badge readers share: a port opened by URL, a reading thread that
survives a vanished port, debouncing, and log lines that cannot flood the journal.

Ports are pyserial URLs (``/dev/serial0``, ``socket://127.0.0.1:7000``,
``loop://``), so a reader runs unchanged against real hardware, a pty or a
simulated peer on a socket. A reader subclass only says how to start talking to
its chip (:meth:`SerialBadgeReader.greet`) and how to get UIDs out of it
(:meth:`SerialBadgeReader.listen`); everything else is here.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import serial

from controller.hardware.interfaces import BadHardwareConfig, HardwareClosed, PartFailed

log = logging.getLogger(__name__)

REOPEN_EVERY_S = 2.0
"""How often a reader whose port vanished (a USB adapter pulled out) tries it again."""
QUEUED_TAPS = 16
"""Taps waiting for the gateway beyond this are dropped (oldest first): a reader flooded
with garbage must not grow without bound."""


class Port(Protocol):
    """What the readers use of a pyserial port (any backend: POSIX, socket://, loop://)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


def open_serial(url: str, *, baudrate: int, timeout: float) -> Port:
    """Open the port at ``url``, 8N1, or raise: :class:`BadHardwareConfig` for a URL that can
    never work (an unknown scheme), :class:`PartFailed` for a port that is not there now."""
    try:
        port = serial.serial_for_url(
            url,
            baudrate=baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=timeout,
            write_timeout=1.0,
        )
    except ValueError as error:
        raise BadHardwareConfig(f"serial port {url!r}: {error}") from error
    except (serial.SerialException, OSError) as error:
        raise PartFailed(f"serial port {url}: {error}") from error
    return cast(Port, port)


class Debouncer:
    """A badge held on a reader is read again and again (an RDM6300 repeats its frame every
    ~50 ms, a PN532 finds it at every poll). A UID counts as a tap once, and again only
    after it has been away from the reader for ``hold_s``."""

    def __init__(self, hold_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self._monotonic = monotonic
        self._last_seen: dict[str, float] = {}

    def tapped(self, uid: str) -> bool:
        """``uid`` was just read: whether that is a new tap."""
        now = self._monotonic()
        last = self._last_seen.get(uid)
        self._last_seen[uid] = now
        if len(self._last_seen) > 8:  # only cards seen within hold_s matter
            self._last_seen = {k: t for k, t in self._last_seen.items() if now - t <= self.hold_s}
            self._last_seen[uid] = now
        return last is None or now - last > self.hold_s


class QuietLog:
    """Log a problem at most once per ``every_s`` per kind, saying how many were held back:
    a noisy serial line must not fill the SD card with the same warning ten times a second."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0) -> None:
        self._logger = logger
        self._every_s = every_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._every_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        suffix = f" ({held} more like it since the last report)" if held else ""
        self._logger.warning(message + suffix, *args)


class SerialBadgeReader:
    """A badge reader on a serial port, read by a thread of its own.

    :meth:`read` never blocks: it returns what the thread queued. While the port is
    unusable it raises :class:`PartFailed` (the gateway then shows an error at the
    machine) and the thread reopens it every :data:`REOPEN_EVERY_S`. A corrupt frame is
    never an error: the parser logs it and resynchronises.
    """

    chip = "badge reader"

    def __init__(
        self,
        url: str,
        *,
        baudrate: int,
        debounce_s: float,
        read_timeout_s: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._read_timeout_s = read_timeout_s
        self.debouncer = Debouncer(debounce_s, monotonic)
        self.quiet = QuietLog(log)
        self._lock = threading.Lock()
        self._taps: deque[str] = deque(maxlen=QUEUED_TAPS)
        self._listener: Callable[[], None] | None = None
        self._failure: PartFailed | None = None
        self._closing = threading.Event()
        self._port: Port | None = None
        try:
            self._port = open_serial(url, baudrate=baudrate, timeout=read_timeout_s)
        except PartFailed as error:
            # Start anyway: the other machines of the gateway work, and this one says why not.
            log.error(
                "%s on %s cannot be opened (retrying every %.0f s): %s", self.chip, url, REOPEN_EVERY_S, error
            )
            self._failure = error
        self._thread = threading.Thread(target=self._run, name=f"{self.chip} {url}", daemon=True)
        self._thread.start()

    # What a reader does with its chip (subclasses).

    def greet(self, port: Port) -> None:
        """Wake the chip and configure it, once the port is open; raise to retry later."""

    def listen(self, port: Port) -> None:
        """Read from the chip for a while (about one read timeout) and :meth:`heard` each UID."""
        raise NotImplementedError

    def forget(self) -> None:
        """The port was closed: drop whatever half-frame the parser holds."""

    # The thread.

    def heard(self, uid: str) -> None:
        """A UID was read from the chip: queue it if it is a new tap, and tell the gateway."""
        if not self.debouncer.tapped(uid):
            return
        with self._lock:
            self._taps.append(uid)
            listener = self._listener
        log.info("%s on %s: badge %s", self.chip, self.url, uid)
        if listener is not None:
            listener()

    def _run(self) -> None:
        greeted = False
        while not self._closing.is_set():
            port = self._port
            if port is None:
                greeted = False
                port = self._reopen()
                if port is None:
                    continue
            try:
                if not greeted:
                    self.greet(port)
                    greeted = True
                    self._working()
                self.listen(port)
            except (serial.SerialException, OSError) as error:
                if self._closing.is_set():
                    return
                self._lost(port, PartFailed(f"{self.chip} on {self.url}: {error}"))
            except Exception:  # a bug must not kill the reader: log it, start afresh
                if self._closing.is_set():
                    return
                log.exception("%s on %s: unexpected error; reopening the port", self.chip, self.url)
                self._lost(port, PartFailed(f"{self.chip} on {self.url}: unexpected error"))

    def _reopen(self) -> Port | None:
        try:
            port = open_serial(self.url, baudrate=self.baudrate, timeout=self._read_timeout_s)
        except (PartFailed, BadHardwareConfig) as error:
            with self._lock:
                self._failure = error if isinstance(error, PartFailed) else PartFailed(str(error))
            self._closing.wait(REOPEN_EVERY_S)
            return None
        with self._lock:
            self._port = port
        return port

    def _working(self) -> None:
        with self._lock:
            recovered = self._failure is not None
            self._failure = None
        if recovered:
            log.info("%s on %s works again", self.chip, self.url)

    def _lost(self, port: Port, failure: PartFailed) -> None:
        log.error("%s", failure)
        with self._lock:
            self._failure = failure
            self._port = None
        self.forget()
        try:
            port.close()
        except (serial.SerialException, OSError):
            log.debug("closing %s failed", self.url, exc_info=True)
        self._closing.wait(REOPEN_EVERY_S)

    def open_port(self) -> Port | None:
        """The port as it is now (None while it is being reopened); for tests and the bench."""
        return self._port

    # The BadgeReader interface.

    def read(self) -> str | None:
        with self._lock:
            if self._closing.is_set():
                raise HardwareClosed(f"{self.chip} on {self.url} is closed")
            if self._taps:
                return self._taps.popleft()
            if self._failure is not None:
                raise self._failure
            return None

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        with self._lock:
            self._listener = listener

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            self._listener = None
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                log.debug("closing %s failed", self.url, exc_info=True)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

"""A current clamp (SCT-013) read through an MCP3008 ADC on the Pi's SPI bus.

The clamp's secondary swings around a DC bias (half the ADC's reference, from a
divider) at the mains frequency. The machine's current is the RMS of that swing,
over a whole number of mains cycles: a window that ends mid-cycle biases the
result by up to a few per cent, which is enough to tell a sewing motor idling
from one running. The bias is not trusted to be exactly Vref/2 (resistor
tolerances, drift): it is measured in each window as the signal's mean, and
removed.

Samples come as fast as the bus allows (thousands a second with the Pi's SPI
driver, fewer through gpiozero's software SPI) and are integrated in time, so an
uneven sampling rate does not skew the result. One thread per chip samples every
clamp on it, channel after channel, a window every ``every_s``:
:meth:`Mcp3008Clamp.amps` never blocks the gateway's worker.

Calibration is per machine and lives in the interlock's rules (``scale`` and
``offset_a`` in the configuration): this part reports
``rms_volts * amps_per_volt`` (30 for an SCT-013-030, which gives 1 V RMS at 30 A).
"""

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from gpiozero import MCP3008, Device, GPIOZeroError

from controller.hardware.gpio import PinFactory
from controller.hardware.interfaces import BadHardwareConfig, HardwareClosed, PartFailed

log = logging.getLogger(__name__)

ADC_CODES = 1024  # MCP3008 datasheet: code = 1024 * Vin / Vref
WINDOW_TRIES = 3
MAX_HOLE_CYCLES = 0.3
"""A cycle with no sample for 0.3 of a cycle (6 ms at 50 Hz: the interpreter hands the GIL
to another thread every 5 ms) is left out of the RMS. A shorter hole is bridged by a straight
line: at worst, across a peak, that cycle's RMS reads 10 % low, one cycle in the window."""
INTERRUPTED_FOR_S = 10.0
"""Windows spoilt by holes keep the last reading; only after this long is it an error."""
BIAS_RANGE = (0.1, 0.9)
"""Where the signal's mean may sit, as a fraction of Vref (the divider puts it at 0.5)."""


def rms_over_cycles(
    times: Sequence[float], volts: Sequence[float], period_s: float, cycles: int, max_hole_s: float = math.inf
) -> float:
    """The RMS of the AC part of a sampled signal over ``cycles`` whole periods from ``times[0]``.

    The samples are joined by straight lines (the signal between two samples is taken to
    change linearly) and integrated exactly, cycle by cycle. A cycle with a hole in it (two
    samples more than ``max_hole_s`` apart: the process was paused, by a garbage collection
    or another thread) would miss a peak, so it is left out; the others are still whole
    cycles. The mean over the cycles kept is the DC bias; the RMS is that of the signal
    less its mean. The last sample must reach the window's end (a later one is cut there),
    and at least half the cycles must be whole.
    """
    if len(times) != len(volts) or len(times) < 4:
        raise ValueError("at least 4 samples, with a time for each")
    start = times[0]
    end = start + period_s * cycles
    if times[-1] < end:
        raise ValueError(
            f"the samples cover {times[-1] - start:.4f} s, less than {cycles} cycles ({end - start:.4f} s)"
        )
    area, square, whole = [0.0] * cycles, [0.0] * cycles, [True] * cycles
    cycle = 0
    for first, b, v_first, vb in _segments(times, volts, end):
        holed = b - first > max_hole_s
        slope = (vb - v_first) / (b - first)
        a, va = first, v_first
        while a < b:
            boundary = start + (cycle + 1) * period_s
            if cycle < cycles - 1 and a >= boundary:
                cycle += 1
                continue
            c = b if cycle == cycles - 1 else min(b, boundary)
            vc = vb if c == b else va + slope * (c - a)
            area[cycle] += (c - a) * (va + vc) / 2
            square[cycle] += (c - a) * (va * va + va * vc + vc * vc) / 3  # exact for a straight line
            whole[cycle] = whole[cycle] and not holed
            a, va = c, vc
    kept = [index for index in range(cycles) if whole[index]]
    if len(kept) < max(1, (cycles + 1) // 2):
        raise ValueError(f"only {len(kept)} of {cycles} cycles were sampled without a hole")
    span = len(kept) * period_s
    mean = sum(area[index] for index in kept) / span
    mean_square = sum(square[index] for index in kept) / span
    return math.sqrt(max(0.0, mean_square - mean * mean))


def _segments(
    times: Sequence[float], volts: Sequence[float], end: float
) -> Iterator[tuple[float, float, float, float]]:
    for index in range(1, len(times)):
        a, b, va, vb = times[index - 1], times[index], volts[index - 1], volts[index]
        if b <= a:
            continue  # two samples at the same instant: nothing between them
        if b >= end:
            yield a, end, va, va + (vb - va) * (end - a) / (b - a)
            return
        yield a, b, va, vb


class Interrupted(PartFailed):
    """A window sampled too sparsely, or with holes in too many cycles: the process was too
    busy to sample it. In the background it keeps the last reading for a while."""


_global_factory_lock = threading.Lock()


@contextlib.contextmanager
def _lent_global_factory(pin_factory: PinFactory | None) -> Iterator[None]:
    """gpiozero 2.0's software SPI bus (what MockFactory gives, and a Pi's fallback when the
    kernel's SPI driver is off) builds itself on the global ``Device.pin_factory`` and
    ignores the one it was given; off a Pi that global cannot even be made. Lend it ours
    for the instant the ADC is built, then put back whatever was there."""
    if pin_factory is None:
        yield
        return
    with _global_factory_lock:
        saved = Device.pin_factory
        Device.pin_factory = pin_factory
        try:
            yield
        finally:
            Device.pin_factory = saved


class Mcp3008Clamp:
    """One SCT-013 clamp on ``channel`` of an MCP3008 (chip select CE0 or CE1: ``device``).

    In the background (the gateway's way) every clamp on the same chip is sampled by one
    thread, the channels in turn within each window: two threads busy on one SPI bus would
    take the interpreter from each other for milliseconds at a time and leave holes in
    every cycle. ``background=False`` measures on demand, in the caller's thread.
    """

    def __init__(
        self,
        channel: int,
        *,
        amps_per_volt: float = 30.0,
        mains_hz: float = 50.0,
        cycles: int = 10,
        every_s: float = 0.5,
        vref: float = 3.3,
        device: int = 0,
        pin_factory: PinFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        if not 0 <= channel <= 7:
            raise BadHardwareConfig(f"an MCP3008 has channels 0 to 7, not {channel}")
        self.channel = channel
        self.amps_per_volt = amps_per_volt
        self.period_s = 1 / mains_hz
        self.cycles = cycles
        self.every_s = every_s
        self.vref = vref
        self._clock = clock
        try:
            with _lent_global_factory(pin_factory):
                self._adc: Any = MCP3008(channel=channel, device=device, pin_factory=pin_factory)
        except GPIOZeroError as error:
            raise PartFailed(f"MCP3008 channel {channel} on SPI CE{device}: {error}") from error
        self._lock = threading.Lock()
        self._amps = 0.0
        self._failure: PartFailed | None = None
        self._interrupted_since: float | None = None
        self._closed = False
        self._sampler: _Sampler | None = None
        if background:
            self._sampler = _Sampler.joined_by(self, (id(pin_factory), device), clock)

    @property
    def window_s(self) -> float:
        return self.period_s * self.cycles

    def read_volts(self) -> float:
        """One conversion, in volts."""
        try:
            return float(self._adc.raw_value) * self.vref / ADC_CODES
        except (GPIOZeroError, OSError) as error:
            raise PartFailed(f"MCP3008 channel {self.channel}: {error}") from error

    def measure(self) -> float:
        """Sample one window (``cycles`` mains periods) now and return its RMS current, in amperes;
        a window spoilt by holes is sampled again, up to :data:`WINDOW_TRIES` times."""
        for attempt in range(1, WINDOW_TRIES + 1):
            times: list[float] = []
            volts: list[float] = []
            end = None
            while end is None or times[-1] < end:
                times.append(self._clock())
                volts.append(self.read_volts())
                end = end if end is not None else times[0] + self.window_s
            try:
                return self.evaluate(times, volts)
            except Interrupted:
                if attempt == WINDOW_TRIES:
                    raise
        raise AssertionError("unreachable")

    def evaluate(self, times: list[float], volts: list[float]) -> float:
        """The RMS current of one window of samples; :class:`Interrupted` if it cannot tell,
        :class:`PartFailed` if the clamp's circuit is wrong."""
        if len(times) < 4 * self.cycles:
            # Fewer than 4 samples a cycle is aliasing, not a measurement: the process was
            # starved (or, if it lasts, the SPI bus is too slow: no spidev).
            raise Interrupted(
                f"MCP3008 channel {self.channel}: only {len(times)} samples in {self.cycles} cycles; "
                "the SPI bus is too slow"
            )
        bias = sum(volts) / len(volts)
        if not BIAS_RANGE[0] * self.vref <= bias <= BIAS_RANGE[1] * self.vref:
            # A clamp swings around the divider's Vref/2: a flat 0 V (or Vref) is a cut wire, a
            # missing divider or a dead ADC, and its "RMS" would read as an idle machine.
            raise PartFailed(
                f"MCP3008 channel {self.channel} sits at {bias:.2f} V, not near {self.vref / 2:.2f} V: "
                "check the clamp's bias divider and wiring"
            )
        try:
            rms = rms_over_cycles(times, volts, self.period_s, self.cycles, self.period_s * MAX_HOLE_CYCLES)
        except ValueError as error:
            raise Interrupted(f"MCP3008 channel {self.channel}: {error}") from error
        return rms * self.amps_per_volt

    def record(self, outcome: float | PartFailed) -> None:
        """The sampler's result for one window: a reading, or why there is none."""
        now = time.monotonic()
        with self._lock:
            if isinstance(outcome, Interrupted):
                # A busy moment of the process, not of the hardware: keep the last reading
                # unless it lasts.
                self._interrupted_since = self._interrupted_since or now
                if now - self._interrupted_since <= INTERRUPTED_FOR_S:
                    return
            if isinstance(outcome, PartFailed):
                first = self._failure is None
                self._failure = outcome
            else:
                recovered = self._failure is not None
                self._amps, self._failure, self._interrupted_since = outcome, None, None
        if isinstance(outcome, PartFailed):
            if first:
                log.error("%s (trying again every %.1f s)", outcome, self.every_s)
        elif recovered:
            log.info("MCP3008 channel %d works again", self.channel)

    def amps(self) -> float:
        if self._closed:
            raise HardwareClosed(f"MCP3008 channel {self.channel} is closed")
        if self._sampler is None:
            return self.measure()
        with self._lock:
            if self._failure is not None:
                raise self._failure
            return self._amps

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sampler is not None:
            self._sampler.leave(self)
        with contextlib.suppress(GPIOZeroError):
            self._adc.close()


class _Sampler:
    """The thread that samples every clamp of one MCP3008: one window for all of them, the
    channels in turn, every ``every_s`` (the shortest asked for)."""

    _running: ClassVar[dict[tuple[int, int], "_Sampler"]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, key: tuple[int, int], clock: Callable[[], float]) -> None:
        self.key = key
        self._clock = clock
        self._clamps: list[Mcp3008Clamp] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"MCP3008 on SPI CE{key[1]}", daemon=True)

    @classmethod
    def joined_by(cls, clamp: Mcp3008Clamp, key: tuple[int, int], clock: Callable[[], float]) -> "_Sampler":
        with cls._registry_lock:
            sampler = cls._running.get(key)
            if sampler is None:
                sampler = cls._running[key] = _Sampler(key, clock)
                sampler._thread.start()
            with sampler._lock:
                sampler._clamps.append(clamp)
        return sampler

    def leave(self, clamp: Mcp3008Clamp) -> None:
        with _Sampler._registry_lock:
            with self._lock:
                if clamp in self._clamps:
                    self._clamps.remove(clamp)
                last = not self._clamps
            if last:
                _Sampler._running.pop(self.key, None)
                self._closing.set()
        if last and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                clamps = list(self._clamps)
            if not clamps:
                self._closing.wait(0.1)
                continue
            try:
                self._sample(clamps)
            except Exception:  # a bug must not stop the sampling of every clamp
                log.exception("MCP3008 sampler: unexpected error")
            self._closing.wait(min(clamp.every_s for clamp in clamps))

    def _sample(self, clamps: list[Mcp3008Clamp]) -> None:
        windows: dict[Mcp3008Clamp, tuple[list[float], list[float]]] = {clamp: ([], []) for clamp in clamps}
        failed: dict[Mcp3008Clamp, PartFailed] = {}
        # However slow the bus, a window ends: past this, what was sampled is judged as it is.
        give_up = time.monotonic() + 10 * max(clamp.window_s for clamp in clamps) + 1
        while not self._closing.is_set() and time.monotonic() < give_up:
            read_any = False
            for clamp in clamps:
                if clamp in failed:
                    continue
                times, volts = windows[clamp]
                if times and times[-1] >= times[0] + clamp.window_s:
                    continue  # this clamp's window is complete
                now = self._clock()
                try:
                    volts.append(clamp.read_volts())
                except PartFailed as error:
                    failed[clamp] = error
                    continue
                times.append(now)
                read_any = True
            if not read_any:
                break  # every window is complete (or its clamp failed)
        for clamp in clamps:
            if clamp in failed:
                clamp.record(failed[clamp])
                continue
            try:
                clamp.record(clamp.evaluate(*windows[clamp]))
            except PartFailed as error:
                clamp.record(error)

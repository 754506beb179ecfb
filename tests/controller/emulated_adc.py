"""An MCP3008 emulated on gpiozero's mock SPI pins, fed a waveform of time.

It follows the chip's datasheet conversation, as gpiozero's own tests emulate it with
``MockSPIDevice``: after chip select, a start bit, the single/differential bit and three
channel bits; then the chip clocks out a null bit and the 10-bit result, MSB first
(gpiozero reads it as a 12-bit word).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockFactory, MockSPIDevice

Wave = Callable[[float], float]
"""Volts at the ADC input at time t (seconds)."""


class SteppingClock:
    """A clock that moves by ``step`` s (plus up to ``jitter`` s) each time it is read, as
    a sampling loop reads it once per sample."""

    def __init__(self, step: float, jitter: float = 0.0, seed: int = 1) -> None:
        self.now = 0.0
        self.step = step
        self.jitter = jitter
        self._random = random.Random(seed)

    def __call__(self) -> float:
        self.now += self.step + (self._random.uniform(0, self.jitter) if self.jitter else 0.0)
        return self.now


def clamp_wave(amps_rms: float, *, amps_per_volt: float = 30.0, bias: float = 1.62, hz: float = 50.0) -> Wave:
    """An SCT-013-030's output for a sine current of ``amps_rms``, on a bias of ``bias`` volts."""
    peak = amps_rms / amps_per_volt * math.sqrt(2)
    return lambda t: bias + peak * math.sin(2 * math.pi * hz * t)


class EmulatedMcp3008(MockSPIDevice):  # type: ignore[misc]
    """An MCP3008 on the Pi's SPI0 pins (SCLK 11, MOSI 10, MISO 9, CE0 8) of ``factory``."""

    rx_buf: list[int]
    tx_buf: list[int]

    def __init__(
        self, factory: MockFactory, clock: SteppingClock, *, vref: float = 3.3, select_pin: int = 8
    ) -> None:
        super().__init__(11, 10, 9, select_pin, pin_factory=factory)
        self.vref = vref
        self.clock = clock
        self.waves: dict[int, Wave] = {}
        self.conversions = 0
        self._phase = "idle"

    def on_start(self) -> None:
        super().on_start()
        self._phase = "idle"

    def on_bit(self) -> None:
        bits = self.rx_buf
        if self._phase == "idle":
            if bits[-1]:  # the start bit
                self._phase = "mode"
                self.rx_buf = []
        elif self._phase == "mode":
            self._phase = "single" if bits[-1] else "differential"
            self.rx_buf = []
        elif self._phase in ("single", "differential") and len(bits) == 3:
            self._convert(int("".join("1" if bit else "0" for bit in bits), 2))
            self._phase = "result"
        elif self._phase == "result" and not self.tx_buf:
            self._phase = "idle"
            self.rx_buf = []

    def _convert(self, channel: int) -> None:
        wave = self.waves.get(channel)
        volts = 0.0 if wave is None else wave(self.clock.now)
        code = min(1023, max(0, int(volts / self.vref * 1024)))
        self.conversions += 1
        device: Any = self
        device.tx_word(code, 12)  # a null bit, the 10 bits, and gpiozero's padding

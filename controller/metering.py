"""What a machine's current clamp says once calibrated, and the energy a session drew.

Pure, like :mod:`controller.machine`: times are monotonic seconds given by the caller.

Calibration maps a raw reading to amperes before any threshold sees it:
``amps = max(0, raw * scale + offset_a)``. A clamp never reads a negative
current, so an offset that would take a quiet machine below zero reads 0.

Energy is integrated as a zero-order hold (left rectangle): each sample's
power holds until the next sample. Unlike a trapezoid, that lets an event at
any instant between two samples carry the energy up to that instant, and the
total still never decreases when the next sample comes, whatever it reads.
"""

from dataclasses import dataclass

__all__ = ["Calibration", "EnergyMeter", "Supply"]

WH_DECIMALS = 3
"""Energy in events is rounded to the milliwatt-hour (rounding keeps it non-decreasing)."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """A clamp's correction: a gain and an offset in amperes."""

    scale: float = 1.0
    offset_a: float = 0.0

    def amps(self, raw: float) -> float:
        return max(0.0, raw * self.scale + self.offset_a)


@dataclass(frozen=True, slots=True)
class Supply:
    """The machine's supply, where it is known: power is amps * volts * power factor."""

    voltage_v: float
    power_factor: float = 1.0

    def watts(self, amps: float) -> float:
        return amps * self.voltage_v * self.power_factor


class EnergyMeter:
    """The energy of one session, from ``started`` on, given the current drawn then."""

    __slots__ = ("_joules", "_since", "_supply", "_watts")

    def __init__(self, supply: Supply, started: float, amps: float) -> None:
        self._supply = supply
        self._joules = 0.0
        self._since = started
        self._watts = supply.watts(amps)

    def sample(self, amps: float, now: float) -> None:
        """A sample at ``now``: the previous power held until now, this one from now on."""
        if now > self._since:
            self._joules += self._watts * (now - self._since)
            self._since = now
        self._watts = self._supply.watts(amps)

    def wh(self, now: float) -> float:
        """Watt-hours drawn up to ``now`` (the last sample's power held until then)."""
        joules = self._joules + self._watts * max(0.0, now - self._since)
        return round(joules / 3600, WH_DECIMALS)

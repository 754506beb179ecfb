"""What the server writes to the time-series store: one point per telemetry sample.

Measurement ``machine``; tags ``site``, ``gateway`` and ``machine``; numeric
fields only, so that every InfluxDB-API store (InfluxDB 1.8, 2.x and 3, and
victoria-metrics, which names the series ``machine_<field>``) reads them alike:

- ``current_a``: the current drawn, amperes RMS (float);
- ``running``: 1 while the gateway judges the machine running, else 0 (integer);
- ``power_w``: watts, only when the gateway measures it (float).

Points are rendered here as InfluxDB line protocol (influxdb-client's own
``Point`` is untyped, and this is all we need of it) with nanosecond
timestamps, the write API's default precision. The Grafana dashboard in
``hardware/grafana/`` queries exactly these names; a test holds the two together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from protocol.messages import Telemetry

MEASUREMENT: Final = "machine"
TAGS: Final = ("site", "gateway", "machine")
FIELDS: Final = ("current_a", "running", "power_w")

_NS_PER_MS: Final = 1_000_000


def _escape_tag(value: str) -> str:
    # Ids never need it (a-z, 0-9, '-'), but a point must never be malformed.
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _float(value: float) -> str:
    # repr is the shortest text that reads back as the same float; no suffix means float.
    return repr(float(value))


@dataclass(frozen=True, slots=True)
class MachineSample:
    """A telemetry sample with the site and gateway it came from (topics carry those)."""

    site: str
    gateway: str
    machine: str
    at_ms: int
    current_a: float
    running: bool
    power_w: float | None = None

    @classmethod
    def of(cls, site: str, gateway: str, sample: Telemetry) -> MachineSample:
        # ``power_w`` is not in protocol v1's Telemetry (it is proposed as an optional
        # field): it is read when a newer protocol package has it, with no change here.
        power = getattr(sample, "power_w", None)
        return cls(
            site=site,
            gateway=gateway,
            machine=sample.machine,
            at_ms=sample.at_ms,
            current_a=float(sample.current_a),
            running=sample.running,
            power_w=float(power) if isinstance(power, int | float) and not isinstance(power, bool) else None,
        )

    def fields(self) -> dict[str, float | int]:
        """The numeric fields of the point, by name."""
        fields: dict[str, float | int] = {"current_a": float(self.current_a), "running": int(self.running)}
        if self.power_w is not None and math.isfinite(self.power_w):
            fields["power_w"] = float(self.power_w)
        return fields

    def line(self) -> str:
        """The point in line protocol, timestamped by the gateway, in nanoseconds."""
        tags = ",".join(
            f"{key}={_escape_tag(value)}"
            for key, value in (("gateway", self.gateway), ("machine", self.machine), ("site", self.site))
        )
        fields = ",".join(
            f"{name}={value}i" if isinstance(value, int) else f"{name}={_float(value)}"
            for name, value in self.fields().items()
        )
        return f"{MEASUREMENT},{tags} {fields} {self.at_ms * _NS_PER_MS}"

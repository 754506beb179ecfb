"""Machine telemetry to an InfluxDB-API time-series store, never in the way of a decision.

See :mod:`server.telemetry.writer` for what happens when the store is slow or
down, and :mod:`server.telemetry.points` for what is written.
"""

from server.telemetry.points import FIELDS, MEASUREMENT, TAGS, MachineSample
from server.telemetry.writer import TelemetryWriter, WriterStats

__all__ = ["FIELDS", "MEASUREMENT", "TAGS", "MachineSample", "TelemetryWriter", "WriterStats"]

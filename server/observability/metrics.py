"""The server's own metrics, for a Prometheus scrape of ``GET /metrics``.

Each app has a registry of its own (never prometheus-client's global one), so
that several apps in one process, as in the tests, count apart.

What the decision path pays: one dictionary look-up and two counter increments
under uncontended locks, and a histogram observation, a few microseconds in
all against about a millisecond per decision (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final

import prometheus_client
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from server.db import SessionFactory
from server.models import Gateway, GatewayState
from server.telemetry import WriterStats

log = logging.getLogger(__name__)

# The ``*_created`` series prometheus-client adds to every counter say when the process
# started counting, which Prometheus knows already: they only double the output.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated there

DECISION_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
)
"""Seconds: 0.1 ms to 50 ms, dense around the 1 to 2 ms a decision takes through a broker."""

CONTENT_TYPE: Final = prometheus_client.CONTENT_TYPE_LATEST


class ServerMetrics:
    """Counters the MQTT handlers feed, and collectors read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._decisions = Counter(
            "atelier_decisions",
            "Access requests answered, by outcome: granted, or the reason for the refusal.",
            ["outcome"],
            registry=self.registry,
        )
        self._decision_seconds = Histogram(
            "atelier_decision_seconds",
            "Time from an access request's arrival at the server to its reply being published.",
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        self._events_ingested = Counter(
            "atelier_events_ingested",
            "Usage events acknowledged as applied (a repeat of an event already applied included).",
            registry=self.registry,
        )
        self._events_refused = Counter(
            "atelier_events_refused",
            "Usage events refused for good: malformed, or for an unknown gateway, machine or session.",
            registry=self.registry,
        )
        self._backlog = Gauge(
            "atelier_gateway_backlog",
            "Usage events a gateway holds unacknowledged, as its last status said.",
            ["gateway"],
            registry=self.registry,
        )
        self._event_lag = Gauge(
            "atelier_gateway_event_lag_seconds",
            "How old the last usage event from a gateway was when it arrived: high while a gateway "
            "replays events journaled offline, near zero once it has caught up.",
            ["gateway"],
            registry=self.registry,
        )
        self._outcomes: dict[str, Counter] = {}

    # Fed by the MQTT handlers.

    def decided(self, outcome: str) -> None:
        """Count an answered access request: ``granted``, or a refusal's reason code."""
        child = self._outcomes.get(outcome)
        if child is None:
            # Reason codes are a closed set: the label never grows without bound.
            child = self._outcomes[outcome] = self._decisions.labels(outcome)
        child.inc()

    def decision_took(self, seconds: float) -> None:
        self._decision_seconds.observe(seconds)

    def event_ingested(self, gateway: str, lag_s: float) -> None:
        self._events_ingested.inc()
        self._event_lag.labels(gateway).set(max(0.0, lag_s))

    def event_refused(self) -> None:
        self._events_refused.inc()

    def gateway_backlog(self, gateway: str, events: int) -> None:
        self._backlog.labels(gateway).set(events)

    # Read when scraped.

    def watch_gateways(self, session_factory: SessionFactory, site: str) -> None:
        """Export ``atelier_gateways_online``, as the database says (as ``GET /api/v1/gateways`` does)."""
        self.registry.register(_GatewaysOnline(session_factory, site))

    def watch_telemetry(self, stats: Callable[[], WriterStats | None]) -> None:
        """Export the telemetry writer's counts; zeros while telemetry is off (``stats`` gives None)."""
        self.registry.register(_TelemetryCounts(stats))

    def exposition(self) -> bytes:
        """Everything, in the Prometheus text format."""
        return prometheus_client.generate_latest(self.registry)


class _GatewaysOnline(Collector):
    def __init__(self, session_factory: SessionFactory, site: str) -> None:
        self._sessions = session_factory
        self._query = sa.select(sa.func.count()).where(
            Gateway.site == site, Gateway.state == GatewayState.ONLINE
        )

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "atelier_gateways_online", "Gateways of this site whose last status is online."
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        try:
            with self._sessions() as db:
                online = db.scalar(self._query.select_from(Gateway)) or 0
        except SQLAlchemyError as error:
            # A scrape without this gauge says more than a wrong number would.
            log.warning("metrics: could not count the gateways online: %s", error)
            return []
        family = self._family()
        family.add_metric([], online)
        return [family]


_OFF = WriterStats(written=0, dropped=0, buffered=0, failing=False)


class _TelemetryCounts(Collector):
    def __init__(self, stats: Callable[[], WriterStats | None]) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._stats() or _OFF)

    @staticmethod
    def _families(stats: WriterStats | None) -> list[Metric]:
        written = CounterMetricFamily(
            "atelier_telemetry_points_written", "Telemetry points the time-series store accepted."
        )
        dropped = CounterMetricFamily(
            "atelier_telemetry_points_dropped",
            "Telemetry points dropped: the buffer was full while the store was slow or down, "
            "or the store refused them for good.",
        )
        buffered = GaugeMetricFamily(
            "atelier_telemetry_points_buffered", "Telemetry points waiting to be written."
        )
        if stats is None:
            return [written, dropped, buffered]
        written.add_metric([], stats.written)
        dropped.add_metric([], stats.dropped)
        buffered.add_metric([], stats.buffered)
        return [written, dropped, buffered]

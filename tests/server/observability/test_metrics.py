"""``GET /metrics``: the server's own metrics in the Prometheus text format."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from protocol.messages import EventAck, EventKind, GatewayState, GatewayStatus, Reason, UsageEvent
from protocol.topics import Channel, topic
from server.app import create_app
from server.observability import DECISION_BUCKETS, ServerMetrics
from server.settings import Settings
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import TIMEOUT_S, FakeGateway
from tests.server.observability.scrape import scrape, value
from tests.server.telemetry.support import wait_for
from tests.services import Mosquitto


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_decisions_events_and_gateways_are_counted(
    broker: Mosquitto, database_url: str, workshop: Workshop
) -> None:
    app = create_app(Settings(database_url=database_url, mqtt_url=broker.url, site=workshop.site))
    with TestClient(app) as client:
        assert app.state.mqtt.wait_until_ready(TIMEOUT_S)
        gateway = FakeGateway(broker.url, workshop.site, workshop.gateway)
        try:
            assert value(scrape(client), "atelier_gateways_online") == 0
            gateway.status(GatewayStatus(state=GatewayState.ONLINE, boot=1, at_ms=now_ms(), backlog=12))
            wait_for(lambda: value(scrape(client), "atelier_gateways_online") == 1, "the gateway online")
            assert value(scrape(client), "atelier_gateway_backlog", gateway=workshop.gateway) == 12

            assert gateway.ask("sewing-1", workshop.alice_badge).granted
            assert gateway.ask("free-1", workshop.bob_badge).granted
            assert gateway.ask("sewing-1", workshop.bob_badge).reason is Reason.NOT_CERTIFIED
            assert gateway.ask("cutter-1", workshop.alice_badge).reason is Reason.MACHINE_LOCKED_OUT
            requests = topic(workshop.site, workshop.gateway, Channel.ACCESS_REQUEST)
            gateway.publish_raw(requests, json.dumps({"request_id": "r-bad", "machine": "sewing-1"}).encode())
            assert gateway.next_reply().reason is Reason.BAD_REQUEST
            # Dropped unanswered: the gateway stopped waiting long ago.
            gateway.request("sewing-1", workshop.alice_badge, expires_in_ms=-60_000)

            replayed_at = now_ms() - 120_000  # journaled offline two minutes ago
            gateway.event(UsageEvent(seq=1, session_id="s-1", machine="sewing-1", kind=EventKind.SESSION_STARTED,
                                     at_ms=replayed_at, badge=workshop.alice_badge))  # fmt: skip
            gateway.event(UsageEvent(seq=2, session_id="s-1", machine="loom-9", kind=EventKind.SESSION_STARTED,
                                     at_ms=replayed_at))  # fmt: skip
            events = topic(workshop.site, workshop.gateway, Channel.EVENTS)
            gateway.publish_raw(events, b'{"seq": 3, "kind": "exploded"}')
            assert gateway.next_ack() == EventAck(seq=1)
            assert not gateway.next_ack().ok
            assert not gateway.next_ack().ok

            # The expired request got no answer to wait for: wait for its count instead.
            def samples_when_all_counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
                found = scrape(client)
                expired = found.get(("atelier_decisions_total", (("outcome", "request_expired"),)))
                return found if expired == 1 else None

            metrics = wait_for(samples_when_all_counted, "the expired request to be counted")
        finally:
            gateway.close()

    assert value(metrics, "atelier_decisions_total", outcome="granted") == 2
    assert value(metrics, "atelier_decisions_total", outcome="not_certified") == 1
    assert value(metrics, "atelier_decisions_total", outcome="machine_locked_out") == 1
    assert value(metrics, "atelier_decisions_total", outcome="bad_request") == 1
    # Every reply published was timed; the dropped request had none.
    assert value(metrics, "atelier_decision_seconds_count") == 5
    assert 0 < value(metrics, "atelier_decision_seconds_sum") < 5 * TIMEOUT_S
    buckets = [
        le for (name, labels) in metrics if name == "atelier_decision_seconds_bucket" for _, le in labels
    ]
    assert [float(le) for le in buckets] == [*DECISION_BUCKETS, float("inf")]
    assert value(metrics, "atelier_decision_seconds_bucket", le="+Inf") == 5
    assert value(metrics, "atelier_events_ingested_total") == 1
    assert value(metrics, "atelier_events_refused_total") == 2
    assert (
        119 < value(metrics, "atelier_gateway_event_lag_seconds", gateway=workshop.gateway) < 120 + TIMEOUT_S
    )
    assert value(metrics, "atelier_gateways_online") == 1
    # Telemetry is off: its counters say zero rather than vanish.
    assert value(metrics, "atelier_telemetry_points_written_total") == 0
    assert value(metrics, "atelier_telemetry_points_dropped_total") == 0


def test_each_app_counts_on_its_own(database_url: str, site_id: str) -> None:
    settings = Settings(database_url=database_url, site=site_id)
    first, second = create_app(settings, mqtt=False), create_app(settings, mqtt=False)
    first.state.metrics.decided("granted")
    with TestClient(first) as one, TestClient(second) as other:
        assert value(scrape(one), "atelier_decisions_total", outcome="granted") == 1
        assert ("atelier_decisions_total", (("outcome", "granted"),)) not in scrape(other)
        text = other.get("/metrics").text
    for family in (
        "atelier_decisions_total counter",
        "atelier_decision_seconds histogram",
        "atelier_events_ingested_total counter",
        "atelier_events_refused_total counter",
        "atelier_gateway_backlog gauge",
        "atelier_gateways_online gauge",
        "atelier_telemetry_points_dropped_total counter",
        "atelier_telemetry_points_written_total counter",
    ):
        name, kind = family.split()
        assert f"# TYPE {name} {kind}" in text
    assert "_created" not in text


@pytest.mark.parametrize("outcome", ["granted", "not_certified"])
def test_counting_a_decision_costs_microseconds(outcome: str) -> None:
    # Not a timing test: a bound a thousand times above what it costs, to catch a blunder
    # (a lock held across I/O, a registry walk per call) rather than to measure.
    metrics = ServerMetrics()
    started = time.perf_counter()
    for _ in range(10_000):
        metrics.decided(outcome)
        metrics.decision_took(0.0012)
    per_decision = (time.perf_counter() - started) / 10_000
    assert per_decision < 0.001
    assert metrics.registry.get_sample_value("atelier_decisions_total", {"outcome": outcome}) == 10_000

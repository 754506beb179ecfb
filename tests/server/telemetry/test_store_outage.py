"""A telemetry store that is down or hangs never holds up a decision or a usage event.

The whole server runs (the app, both MQTT lanes, the writer) against the real
Mosquitto; a fake gateway floods telemetry, asks for access and sends usage
events while the store is unreachable, or accepts connections and never answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from protocol.messages import EventAck, EventKind, Telemetry, UsageEvent
from protocol.topics import Channel
from server.app import create_app
from server.db import SessionFactory
from server.models import UsageSession
from server.settings import Settings
from server.telemetry import TelemetryWriter
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import TIMEOUT_S, FakeGateway
from tests.server.observability.scrape import scrape, value
from tests.server.telemetry.support import StalledStore, wait_for
from tests.services import Mosquitto, free_port

BUFFER = 10
FLOOD = 100
DECISIONS = 20
PROMPT_S = 1.0
"""A decision takes about a millisecond; this only has to be far below the store's 30 s hang."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Outage:
    url: str
    hanging: StalledStore | None  # None: nothing listens at all


@pytest.fixture(params=["down", "hanging"])
def outage(request: pytest.FixtureRequest) -> Iterator[Outage]:
    if request.param == "down":
        yield Outage(f"http://127.0.0.1:{free_port()}", None)
        return
    store = StalledStore()
    yield Outage(store.url, store)
    store.close()


def test_decisions_and_usage_go_on_while_the_store_fails(
    broker: Mosquitto, database_url: str, workshop: Workshop, session_factory: SessionFactory, outage: Outage
) -> None:
    settings = Settings(
        database_url=database_url,
        mqtt_url=broker.url,
        site=workshop.site,
        telemetry_url=outage.url,
        telemetry_buffer_points=BUFFER,
        telemetry_flush_interval_s=0.05,
        telemetry_timeout_s=30,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        assert app.state.mqtt.wait_until_ready(TIMEOUT_S)
        writer: TelemetryWriter = app.state.telemetry
        gateway = FakeGateway(broker.url, workshop.site, workshop.gateway)
        try:
            gateway.send(
                Channel.TELEMETRY, Telemetry(machine="sewing-1", at_ms=now_ms(), current_a=1, running=True)
            )
            if outage.hanging is not None:
                assert outage.hanging.accepted.wait(TIMEOUT_S), "the writer never reached the store"
            else:
                wait_for(lambda: writer.stats.failing, "the writer to find the store down")

            for n in range(FLOOD):
                sample = Telemetry(machine="sewing-1", at_ms=now_ms(), current_a=n / 10, running=n % 2 == 0)
                gateway.send(Channel.TELEMETRY, sample)
            for _ in range(DECISIONS):
                started = time.monotonic()
                reply = gateway.ask("sewing-1", workshop.alice_badge)
                assert reply.granted
                assert time.monotonic() - started < PROMPT_S
            t0 = now_ms()
            started_event = UsageEvent(
                seq=1, session_id="s-1", machine="sewing-1", kind=EventKind.SESSION_STARTED, at_ms=t0,
                badge=workshop.alice_badge,
            )  # fmt: skip
            ended_event = UsageEvent(
                seq=2, session_id="s-1", machine="sewing-1", kind=EventKind.SESSION_ENDED, at_ms=t0 + 60_000,
                unlocked_ms=60_000, running_ms=45_000, idle_ms=15_000,
            )  # fmt: skip
            gateway.event(started_event)
            gateway.event(ended_event)
            assert [gateway.next_ack(), gateway.next_ack()] == [EventAck(seq=1), EventAck(seq=2)]

            # All but the bound (and at most one batch being tried) was dropped, and counted.
            wait_for(
                lambda: writer.stats.dropped >= FLOOD + 1 - 2 * BUFFER, "the flood to overflow the buffer"
            )
            metrics = scrape(client)
            assert value(metrics, "atelier_telemetry_points_dropped_total") >= FLOOD + 1 - 2 * BUFFER
            assert value(metrics, "atelier_telemetry_points_written_total") == 0
            assert value(metrics, "atelier_decisions_total", outcome="granted") == DECISIONS
            assert value(metrics, "atelier_decision_seconds_count") == DECISIONS
            assert value(metrics, "atelier_events_ingested_total") == 2
            if outage.hanging is not None:
                # All of that happened while the first write was still waiting for an answer.
                assert not writer.stats.failing
                outage.hanging.close()  # so that the app need not wait out the 30 s on stopping
        finally:
            gateway.close()
    with session_factory() as db:
        session = db.scalars(sa.select(UsageSession)).one()
        assert (session.session_id, session.running_ms, session.member_id) == ("s-1", 45_000, workshop.alice)
        assert session.ended_at is not None
    assert writer.stats.written == 0

"""Two servers sharing the subscriptions (``$share/<group>/...``) on one PostgreSQL.

Each server has its own MQTT connections and its own connection pool, as two processes would.
Whichever of them a message reaches, each access request is answered once, each usage event is
applied once and acknowledged at every delivery, and a duplicate that arrives while the first
copy is still being applied (two processes at once) is acknowledged as a duplicate, not lost
to an error.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from protocol.messages import DecidedBy, EventAck, EventKind, Reason, UsageEvent, encode
from protocol.topics import Channel, topic
from server.clock import to_ms, utc_now
from server.db import SessionFactory, make_engine, make_session_factory, table
from server.models import AccessDecision, Gateway, GatewayEvent, UsageSession
from server.mqtt import MqttService
from server.settings import Settings
from server.usage import ingest
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import TIMEOUT_S, FakeGateway
from tests.services import Mosquitto, Postgres

_databases = itertools.count(1)


@pytest.fixture
def database_url(postgres_server: Postgres) -> str:
    """PostgreSQL only: shared subscriptions are for several processes, which SQLite does not serve."""
    name = f"scale_out_{next(_databases)}"
    admin = sa.create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres_server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def servers(settings: Settings, workshop: Workshop) -> Iterator[list[MqttService]]:
    """Two servers in one shared-subscription group, each with an engine of its own."""
    shared = settings.model_copy(update={"mqtt_shared_group": f"servers-{workshop.site}"})
    engines = [make_engine(shared.database_url) for _ in range(2)]
    services = [MqttService(shared, make_session_factory(engine)) for engine in engines]
    for service in services:
        service.start()
    try:
        for service in services:
            assert service.wait_until_ready(TIMEOUT_S)
        yield services
    finally:
        for service in services:
            service.stop()
        for engine in engines:
            engine.dispose()


def counted(service: MqttService, name: str) -> float:
    registry = service.handlers.metrics.registry
    return sum(
        sample.value for metric in registry.collect() for sample in metric.samples if sample.name == name
    )


def drain(gateway: FakeGateway, quiet_s: float = 0.5) -> list[tuple[str, bytes]]:
    """Whatever else the servers send within ``quiet_s`` (there should be nothing)."""
    extra = []
    while True:
        try:
            extra.append(gateway.received.get(timeout=quiet_s))
        except queue.Empty:
            return extra


def test_the_subscriptions_each_server_makes(servers: list[MqttService], workshop: Workshop) -> None:
    """Requests, certifications, events and telemetry are split; states are seen by every server."""
    root = f"atelier/v1/{workshop.site}/+"
    group = f"$share/servers-{workshop.site}"
    assert sorted(servers[0].subscriptions()) == sorted(
        [
            (f"{group}/{root}/access/request", 1),
            (f"{group}/{root}/certify/request", 1),
            (f"{group}/{root}/events", 1),
            (f"{group}/{root}/telemetry", 0),
            (f"{root}/status", 1),
            (f"{root}/machine/+", 1),
        ]
    )


def test_each_request_is_answered_once_by_one_of_the_servers(
    servers: list[MqttService],
    broker: Mosquitto,
    workshop: Workshop,
    session_factory: SessionFactory,
) -> None:
    gateways = [
        FakeGateway(broker.url, workshop.site, workshop.gateway),
        FakeGateway(broker.url, workshop.site, workshop.other_gateway),
    ]
    try:
        sent: dict[FakeGateway, list[str]] = {gateway: [] for gateway in gateways}
        for _ in range(100):
            sent[gateways[0]].append(gateways[0].request("sewing-1", workshop.alice_badge))
            sent[gateways[1]].append(gateways[1].request("printer-1", workshop.alice_badge))
        replies = {gateway.slug: [gateway.next_reply() for _ in sent[gateway]] for gateway in gateways}
        for gateway in gateways:
            assert sorted(reply.request_id for reply in replies[gateway.slug]) == sorted(sent[gateway])
            assert drain(gateway) == []  # no second answer to any of them
        # The rules ran wherever the request went: Alice sews, and is not certified on the printer.
        assert {reply.reason for reply in replies[workshop.gateway]} == {Reason.GRANTED}
        assert {reply.reason for reply in replies[workshop.other_gateway]} == {Reason.NOT_CERTIFIED}
    finally:
        for gateway in gateways:
            gateway.close()
    with session_factory() as db:
        logged = db.execute(
            sa.select(AccessDecision.request_id, sa.func.count()).group_by(AccessDecision.request_id)
        ).all()
    assert sorted(request_id for request_id, _ in logged) == sorted(itertools.chain(*sent.values()))
    assert {times for _, times in logged} == {1}
    answered = [counted(service, "atelier_decisions_total") for service in servers]
    assert sum(answered) == 200
    assert min(answered) > 0, answered  # both took their share


def session(number: int, first_seq: int, at_ms: int, badge: str) -> list[UsageEvent]:
    common: dict[str, Any] = {"session_id": f"so-{number}", "machine": "sewing-1"}
    running = 1000 * (number + 1)
    return [
        UsageEvent(seq=first_seq, kind=EventKind.SESSION_STARTED, at_ms=at_ms, badge=badge,
                   decided_by=DecidedBy.SERVER, **common),
        UsageEvent(seq=first_seq + 1, kind=EventKind.RUNNING_STARTED, at_ms=at_ms + 500, unlocked_ms=500,
                   idle_ms=500, **common),
        UsageEvent(seq=first_seq + 2, kind=EventKind.SESSION_ENDED, at_ms=at_ms + 500 + running,
                   unlocked_ms=500 + running, running_ms=running, idle_ms=500, end_reason="badge_out",
                   **common),
    ]  # fmt: skip


def test_each_event_is_applied_once_and_acknowledged_at_each_delivery(
    servers: list[MqttService],
    broker: Mosquitto,
    workshop: Workshop,
    session_factory: SessionFactory,
) -> None:
    """Every event is published twice in a row, as a gateway's replay does: the two copies go to
    the two servers (the broker deals a group's messages in turn), which apply them at once."""
    t0 = to_ms(utc_now())
    sessions = 40
    events = [
        e for n in range(sessions) for e in session(n, 3 * n + 1, t0 + 60_000 * n, workshop.alice_badge)
    ]
    gateway = FakeGateway(broker.url, workshop.site, workshop.gateway)
    name = topic(workshop.site, workshop.gateway, Channel.EVENTS)
    try:
        for event in events:
            payload = encode(event)
            first = gateway.client.publish(name, payload, qos=1)
            second = gateway.client.publish(name, payload, qos=1)
            first.wait_for_publish(TIMEOUT_S)
            second.wait_for_publish(TIMEOUT_S)
        acks = [gateway.next_ack() for _ in range(2 * len(events))]
        assert drain(gateway) == []
    finally:
        gateway.close()
    assert all(ack.ok for ack in acks), [ack for ack in acks if not ack.ok]
    assert Counter(ack.seq for ack in acks) == {event.seq: 2 for event in events}
    with session_factory() as db:
        applied = db.scalars(sa.select(GatewayEvent.seq).order_by(GatewayEvent.seq)).all()
        rows = db.execute(
            sa.select(UsageSession.session_id, UsageSession.running_ms, UsageSession.ended_at.is_not(None))
        ).all()
    assert applied == [event.seq for event in events]
    assert sorted(rows) == sorted((f"so-{n}", 1000 * (n + 1), True) for n in range(sessions))
    ingested = [counted(service, "atelier_events_ingested_total") for service in servers]
    assert sum(ingested) == 2 * len(events)
    assert min(ingested) > 0, ingested


def waiting_for_a_lock(engine: Engine) -> bool:
    """Whether a session of this database comes to wait for a lock (another's uncommitted row)."""
    deadline = time.monotonic() + TIMEOUT_S
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            watcher.rollback()  # a new snapshot of the statistics at each look
            if waiting:
                return True
            time.sleep(0.02)
    return False


@pytest.mark.parametrize("first_copy", ["committed", "rolled back"])
def test_a_duplicate_arriving_while_the_first_copy_is_applied_waits_for_it(
    first_copy: str, engine: Engine, session_factory: SessionFactory, workshop: Workshop
) -> None:
    """Another process holds the event's (gateway, seq) uncommitted: this delivery waits for it,
    then acknowledges a duplicate (it was committed) or applies the event (it was rolled back).
    Either way the gateway gets its ack: no unique-key error escapes to lose it."""
    event = session(0, 1, to_ms(utc_now()), workshop.alice_badge)[0]
    acks: list[EventAck] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            with session_factory() as db:
                acks.append(ingest(db, workshop.gateway, event, utc_now(), site=workshop.site))
        except BaseException as error:  # reported by the test
            errors.append(error)

    with engine.connect() as other:
        gateway_id = other.scalar(sa.select(Gateway.id).where(Gateway.slug == workshop.gateway))
        other.execute(
            sa.insert(table(GatewayEvent)).values(
                gateway_id=gateway_id, seq=event.seq, kind=event.kind.value, received_at=utc_now()
            )
        )
        delivery = threading.Thread(target=deliver)
        delivery.start()
        assert waiting_for_a_lock(engine), "the duplicate did not wait for the first copy"
        assert delivery.is_alive()
        if first_copy == "committed":
            other.commit()
        else:
            other.rollback()
    delivery.join(TIMEOUT_S)
    assert not errors, errors
    assert acks == [EventAck(seq=event.seq)]
    with session_factory() as db:
        sessions = db.scalar(sa.select(sa.func.count()).select_from(UsageSession))
        recorded = db.scalar(sa.select(sa.func.count()).select_from(GatewayEvent))
    # Committed: the first copy's transaction was the one to apply it (here: a bare record).
    assert (sessions, recorded) == ((0, 1) if first_copy == "committed" else (1, 1))

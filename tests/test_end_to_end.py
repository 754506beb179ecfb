"""The whole path, through a real Mosquitto, on SQLite and on PostgreSQL.

A simulated gateway (the real daemon on simulated readers and clamps, its
relay on gpiozero's mock pins) and the real server MQTT service meet only
through the broker: a badge is tapped, the server decides, the machine powers
on, current is sensed, the member badges out, and the server records the
usage session with the running time that was sensed. Then the same events
are delivered again, in another order, and nothing changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa

from controller.clock import ManualClock
from controller.gateway import Gateway
from protocol.messages import EventAck, MachineStateName, decode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, subscription, topic
from server import workshop
from server.db import SessionFactory, make_engine, make_session_factory, upgrade_database
from server.models import AccessDecision, GatewayEvent, UsageSession
from server.mqtt import MqttService
from server.settings import Settings
from tests.controller.support import gateway_config, settle
from tests.services import Mosquitto

TRAINED = "04A1B2C3D4"
UNTRAINED = "04E5F60718"

LOCKED, UNLOCKED, RUNNING = MachineStateName.LOCKED, MachineStateName.UNLOCKED, MachineStateName.RUNNING


class Spy:
    """A client that keeps every raw event a gateway publishes and every ack it gets."""

    def __init__(self, broker_url: str, site: str) -> None:
        self.url = BrokerURL.parse(broker_url)
        self.events: list[bytes] = []
        self.acks: list[EventAck] = []
        self._lock = threading.Condition()
        self.client = make_client(self.url, f"spy-{site}")
        self.client.on_message = self._on_message
        self.client.connect(self.url.host, self.url.port)
        self.client.loop_start()
        for channel in (Channel.EVENTS, Channel.EVENTS_ACK):
            info = self.client.subscribe(subscription(channel, site), qos=1)
            assert info[0] == paho.MQTT_ERR_SUCCESS

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            if message.topic.endswith("/events"):
                self.events.append(bytes(message.payload))
            else:
                self.acks.append(decode(EventAck, message.payload))
            self._lock.notify_all()

    def wait_acks(self, count: int, timeout: float = 10) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: len(self.acks) >= count, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def server(broker: Mosquitto, database_url: str, site_id: str) -> Iterator[SessionFactory]:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with factory() as db:
        workshop.add_skill(db, "industrial-sewing", "Industrial sewing")
        workshop.add_gateway(db, "gw-1", site=site_id)
        workshop.add_machine(
            db,
            "sew-1",
            "Juki DDL-8700",
            machine_class="sewing",
            gateway="gw-1",
            required_skills=["industrial-sewing"],
        )
        amina = workshop.add_member(db, "Amina Diallo", badge=TRAINED)
        workshop.add_member(db, "Chloé Bernard", badge=UNTRAINED)
        workshop.grant_certification(db, amina.id, "industrial-sewing")
        db.commit()
    service = MqttService(Settings(database_url=database_url, mqtt_url=broker.url, site=site_id), factory)
    service.start()
    assert service.wait_until_ready(10), "the server service subscribed"
    try:
        yield factory
    finally:
        service.stop()
        engine.dispose()


def test_badge_to_recorded_session_and_replay_recorded_once(
    broker: Mosquitto, server: SessionFactory, site_id: str, tmp_path: Path
) -> None:
    spy = Spy(broker.url, site_id)
    clock = ManualClock(wall_origin_ms=time.time_ns() // 1_000_000)
    config = gateway_config(broker.url, site_id, tmp_path)
    try:
        with Gateway(config, clock=clock) as gateway:
            assert gateway.wait_connected(10)
            _sew_one_session(gateway, clock, server)
            assert gateway.wait_for(lambda: gateway.journal.unacked() == [], 10), (
                "the server acked every event"
            )
    finally:
        spy.close()

    with server() as db:
        recorded = db.scalars(sa.select(UsageSession)).one()
    assert recorded.ended_at is not None
    assert recorded.end_reason == "badge_out"
    assert recorded.running_ms == 180_000, "three sensed minutes, not the unlocked time"
    assert recorded.unlocked_ms == 207_000
    assert recorded.idle_ms == 27_000
    assert len(spy.events) == 4

    # The same events again, twice, newest first: an at-least-once delivery after a reconnect.
    delivered = spy.events
    url = BrokerURL.parse(broker.url)
    again = Spy(broker.url, site_id)
    replayer = make_client(url, "gw-1-replay")
    replayer.connect(url.host, url.port)
    replayer.loop_start()
    try:
        for payload in [*reversed(delivered), *delivered]:
            replayer.publish(topic(site_id, "gw-1", Channel.EVENTS), payload, qos=1).wait_for_publish(5)
        assert again.wait_acks(2 * len(delivered)), "every replayed event is acknowledged"
        assert all(ack.ok for ack in again.acks)
    finally:
        replayer.disconnect()
        replayer.loop_stop()
        again.close()

    with server() as db:
        replayed = db.scalars(sa.select(UsageSession)).one()
        applied = db.scalar(sa.select(sa.func.count()).select_from(GatewayEvent))
    assert applied == 4, "each (gateway, seq) applied once"
    assert (replayed.running_ms, replayed.idle_ms, replayed.unlocked_ms) == (180_000, 27_000, 207_000)
    assert replayed.ended_at == recorded.ended_at


def _sew_one_session(gateway: Gateway, clock: ManualClock, server: SessionFactory) -> None:
    """An untrained member is refused; a trained one sews 3 minutes in a 207 s session."""
    sewing = gateway.machines["sew-1"]

    # Not trained: refused by the server, the relay never closes.
    sewing.tap(UNTRAINED)
    assert gateway.wait_for(lambda: _decisions(server) == 1 and sewing.state is LOCKED, 5)
    assert not sewing.is_on

    # Trained: granted, the relay closes, but no running time without current.
    start = clock.monotonic()
    sewing.tap(TRAINED)
    assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5)
    assert sewing.is_on
    settle(gateway, sewing, 0.0, start + 20, clock)  # 20 s threading the machine
    settle(gateway, sewing, 2.4, start + 21, clock)  # the motor draws current...
    clock.set(start + 22)  # ... for longer than running_after_s
    assert gateway.wait_for(lambda: sewing.state is RUNNING, 5)
    settle(gateway, sewing, 0.0, start + 201, clock)  # three minutes of seams, then the pedal is let go
    clock.set(start + 207)  # ... for longer than idle_after_s
    assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5)
    sewing.tap(TRAINED)  # badge out
    assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
    assert not sewing.is_on


def _decisions(factory: SessionFactory) -> int:
    with factory() as db:
        return db.scalar(sa.select(sa.func.count()).select_from(AccessDecision)) or 0

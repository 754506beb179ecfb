"""Commands from the server to gateways, through a real Mosquitto: a lockout ends the session on
the machine (once it is idle), and a server that (re)connects asks its gateways to publish again
what it may have missed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from controller.clock import ManualClock
from controller.gateway import Gateway
from controller.hardware.interfaces import Signal
from protocol.messages import Command, CommandAction, MachineStateName, Reason, decode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, topic
from server import workshop
from server.app import create_app
from server.auth.scopes import Scope
from server.auth.tokens import create_token
from server.clock import utc_now
from server.db import make_engine, make_session_factory, upgrade_database
from server.models import UsageSession
from server.mqtt import MqttService
from server.settings import Settings
from tests.controller.support import gateway_config, settle
from tests.services import Mosquitto

TRAINED = "04A1B2C3D4"
LOCKED, UNLOCKED, RUNNING = MachineStateName.LOCKED, MachineStateName.UNLOCKED, MachineStateName.RUNNING


@pytest.fixture
def settings(broker: Mosquitto, database_url: str, site_id: str) -> Settings:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as db:
        workshop.add_skill(db, "industrial-sewing", "Industrial sewing")
        workshop.add_gateway(db, "gw-1", site=site_id)
        workshop.add_machine(
            db, "sew-1", "Juki", machine_class="sewing", gateway="gw-1", required_skills=["industrial-sewing"]
        )
        amina = workshop.add_member(db, "Amina Diallo", badge=TRAINED)
        workshop.grant_certification(db, amina.id, "industrial-sewing")
        db.commit()
    engine.dispose()
    return Settings(database_url=database_url, mqtt_url=broker.url, site=site_id)


@pytest.fixture
def as_manager(settings: Settings) -> dict[str, str]:
    """Headers acting as a manager, through an API token (scope manage)."""
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as db:
        nadia = workshop.add_member(db, "Nadia Benali")
        workshop.set_member_roles(db, nadia.id, manager=True)
        token = create_token(db, nadia.id, scopes={Scope.MANAGE}, now=utc_now()).token
        db.commit()
    engine.dispose()
    return {"Authorization": f"Bearer {token}"}


class CommandSpy:
    def __init__(self, broker_url: str, site: str, gateway: str) -> None:
        url = BrokerURL.parse(broker_url)
        self.commands: list[Command] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = make_client(url, f"command-spy-{site}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(url.host, url.port)
        self.client.loop_start()
        self.client.subscribe(topic(site, gateway, Channel.COMMAND), qos=1)
        assert self._subscribed.wait(10)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.commands.append(decode(Command, message.payload))
            self._changed.notify_all()

    def wait_for(self, action: CommandAction, timeout: float = 10) -> Command | None:
        with self._changed:
            self._changed.wait_for(lambda: any(c.action is action for c in self.commands), timeout)
            return next((c for c in self.commands if c.action is action), None)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def spy(broker: Mosquitto, site_id: str) -> Iterator[CommandSpy]:
    watching = CommandSpy(broker.url, site_id, "gw-1")
    yield watching
    watching.close()


def test_a_server_that_connects_asks_its_gateways_to_publish_again(
    settings: Settings, spy: CommandSpy
) -> None:
    engine = make_engine(settings.database_url)
    service = MqttService(settings, make_session_factory(engine))
    service.start()
    try:
        assert service.wait_until_ready(10)
        refresh = spy.wait_for(CommandAction.REFRESH)
        assert refresh is not None
        assert refresh.machine is None
        assert refresh.expires_at_ms > time.time() * 1000
    finally:
        service.stop()
        engine.dispose()


def test_a_lockout_ends_the_session_once_the_machine_is_idle_and_refuses_the_next_tap(
    settings: Settings, spy: CommandSpy, site_id: str, tmp_path: Path, as_manager: dict[str, str]
) -> None:
    clock = ManualClock(wall_origin_ms=time.time_ns() // 1_000_000)
    app = create_app(settings, sweep=False)
    with (
        TestClient(app) as client,
        Gateway(gateway_config(settings.mqtt_url, site_id, tmp_path), clock=clock) as gateway,
    ):
        assert gateway.wait_connected(10)
        sewing = gateway.machines["sew-1"]
        sewing.tap(TRAINED)
        assert gateway.wait_for(lambda: sewing.state is UNLOCKED, 5)
        start = clock.monotonic()
        settle(gateway, sewing, 2.4, start + 1, clock)
        clock.set(start + 3)
        assert gateway.wait_for(lambda: sewing.state is RUNNING, 5)

        answer = client.patch(
            "/api/v1/machines/sew-1/lockout",
            json={"locked_out": True, "reason": "needle guard"},
            headers=as_manager,
        )
        assert answer.status_code == 200, answer.text
        lock = spy.wait_for(CommandAction.LOCK)
        assert lock is not None
        assert (lock.machine, lock.reason) == ("sew-1", "needle guard")
        assert gateway.wait_for(lambda: sewing.machine.end_pending is not None, 5)
        assert sewing.is_on, "never cut while the machine sews"

        settle(gateway, sewing, 0.0, start + 10, clock)
        clock.set(start + 16)  # idle for longer than idle_after_s
        assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
        assert not sewing.is_on

        sewing.tap(TRAINED)
        assert gateway.wait_for(lambda: sewing.shown == (Signal.DENIED, Reason.MACHINE_LOCKED_OUT), 5)
        assert not sewing.is_on

    with make_session_factory(make_engine(settings.database_url))() as db:
        ended = db.scalars(sa.select(UsageSession)).one()
        assert ended.end_reason == "lock_command"

"""The MQTT service running against the real Mosquitto, with a fake gateway to talk to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.db import SessionFactory
from server.mqtt import MqttService
from server.settings import Settings
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import TIMEOUT_S, FakeGateway
from tests.services import Mosquitto


@pytest.fixture
def settings(broker: Mosquitto, database_url: str, site_id: str) -> Settings:
    return Settings(database_url=database_url, mqtt_url=broker.url, site=site_id)


@pytest.fixture
def service(settings: Settings, session_factory: SessionFactory, workshop: Workshop) -> Iterator[MqttService]:
    service = MqttService(settings, session_factory)
    service.start()
    assert service.wait_until_ready(TIMEOUT_S)
    yield service
    service.stop()


@pytest.fixture
def gateway(broker: Mosquitto, workshop: Workshop, service: MqttService) -> Iterator[FakeGateway]:
    fake = FakeGateway(broker.url, workshop.site, workshop.gateway)
    yield fake
    fake.close()

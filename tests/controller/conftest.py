"""Fixtures for the controller's tests: a manual clock, gpiozero's mock pins, an interlock bench."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from controller.clock import ManualClock
from controller.gateway import Gateway
from tests.controller.interlock import Bench
from tests.controller.responder import Responder
from tests.controller.support import gateway_config
from tests.services import Mosquitto


@pytest.fixture
def bench() -> Bench:
    """An interlock on its own, at t = 100 s, with predictable ids."""
    return Bench()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=100.0, wall_origin_ms=1_750_000_000_000)


@pytest.fixture
def mock_factory() -> Iterator[Any]:
    """gpiozero's MockFactory as the global pin factory, reset afterwards as gpiozero's own tests do."""
    saved = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = saved


@pytest.fixture
def responder(broker: Mosquitto, site_id: str) -> Iterator[Responder]:
    server = Responder(broker.url, site_id)
    yield server
    server.close()


@pytest.fixture
def gateway(broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock) -> Iterator[Gateway]:
    running = Gateway(gateway_config(broker.url, site_id, tmp_path / "gw"), clock=clock)
    running.start()
    assert running.wait_connected(10)
    yield running
    running.stop()

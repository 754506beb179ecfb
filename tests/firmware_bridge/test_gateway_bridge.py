"""A whole gateway whose machine is driven by a microcontroller over the bridge: the parts come
from the ``bridge`` entry point, meet the controller's interfaces, and carry a session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from controller.clock import ManualClock
from controller.gateway import Gateway
from controller.hardware.factory import PART_PLUGINS, build_parts
from controller.hardware.gpio import pin_factory_from_name
from controller.hardware.interfaces import (
    Announcing,
    BadgeReader,
    BadHardwareConfig,
    CurrentSensor,
    Indicator,
    PushButton,
    Signal,
    Switch,
)
from firmware_bridge import parts
from firmware_bridge.messages import SignalCode
from firmware_bridge.simulator import FirmwareSimulator
from protocol.messages import MachineStateName, Reason
from protocol.refusals import RefusalFamily
from tests.controller.responder import MEMBER_BADGE, Responder
from tests.controller.support import gateway_config
from tests.firmware_bridge.test_link import Line, MasterPort, wait_until
from tests.services import Mosquitto


@pytest.fixture
def line() -> Iterator[Line]:
    pty = Line()
    yield pty
    pty.close()


def bridged(line: Line) -> dict[str, object]:
    part = {"type": "bridge", "port": line.url, "channel": 0}
    return {
        "reader": part,
        "current": {**part, "running_above_a": 0.5, "idle_below_a": 0.3, "running_after_s": 1.0},
        "switch": part,
        "indicator": part,
        "button": part,
    }


def test_the_bridge_parts_meet_the_controllers_interfaces(line: Line) -> None:
    assert [entry.value for entry in entry_points(group=PART_PLUGINS) if entry.name == "bridge"] == [
        "firmware_bridge.parts"
    ]
    reader: BadgeReader = parts.badge_reader(port=line.url)
    current: CurrentSensor = parts.current_sensor(port=line.url)
    switch: Switch = parts.switch(port=line.url)
    indicator: Indicator = parts.indicator(port=line.url)
    button: PushButton = parts.button(port=line.url)
    assert isinstance(reader, Announcing)
    assert isinstance(button, Announcing)
    assert reader.link is button.link, "one link per port"  # type: ignore[attr-defined]
    for part in (reader, current, switch, indicator, button):
        part.close()


def test_a_gateway_runs_a_session_on_a_bridged_machine(
    broker: Mosquitto, site_id: str, tmp_path: Path, line: Line
) -> None:
    firmware = FirmwareSimulator(MasterPort(line.master))
    config = gateway_config(broker.url, site_id, tmp_path / "gw", sewing=bridged(line))
    server = Responder(broker.url, site_id)
    clock = ManualClock(start=100.0)
    try:
        with Gateway(config, clock=clock) as gateway:
            assert gateway.wait_connected(10)
            sewing = gateway.machines["sew-1"]
            assert wait_until(lambda: firmware.linked and firmware.signals[0][0] is SignalCode.LOCKED)
            assert firmware.tap("0BADCAFE").wait(2)  # a stranger
            assert wait_until(lambda: firmware.signals[0] == (SignalCode.DENIED, RefusalFamily.BADGE))
            assert firmware.tap(MEMBER_BADGE).wait(2)
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.UNLOCKED, 5)
            assert wait_until(lambda: firmware.relays == [True])  # the order crosses the serial link
            assert sewing.is_on
            assert wait_until(lambda: firmware.signals[0][0] is SignalCode.GRANTED)
            firmware.set_amps(2.0)
            for second in range(1, 5):
                time.sleep(0.3)  # a current report or two
                clock.set(100.0 + second)
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.RUNNING, 5)
            assert wait_until(lambda: firmware.signals[0][0] is SignalCode.RUNNING)
    finally:
        server.close()
        firmware.close()
    assert firmware.relays == [True], "a machine that was running is not cut by the gateway's stop"


def test_a_bridged_reason_family_for_each_refusal(line: Line) -> None:
    firmware = FirmwareSimulator(MasterPort(line.master))
    indicator = parts.indicator(port=line.url)
    try:
        assert wait_until(lambda: firmware.linked)
        indicator.show(Signal.DENIED, Reason.INSUFFICIENT_BALANCE)
        assert wait_until(lambda: firmware.signals[0] == (SignalCode.DENIED, RefusalFamily.BALANCE))
        indicator.show(Signal.ERROR)
        assert wait_until(lambda: firmware.signals[0] == (SignalCode.ERROR, 0))
    finally:
        indicator.close()
        firmware.close()


def test_a_bridge_with_a_bad_port_url_is_a_configuration_error(broker: Mosquitto, tmp_path: Path) -> None:
    config = gateway_config(broker.url, "s", tmp_path / "gw", sewing=bridged_bad())
    with pytest.raises(BadHardwareConfig, match="bridge badge_reader on bogus://x"):
        build_parts(config.machine("sew-1"), pin_factory_from_name("mock"))


def bridged_bad() -> dict[str, object]:
    return {"reader": {"type": "bridge", "port": "bogus://x"}}

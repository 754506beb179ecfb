"""A Shelly Plus 1PM as switch and current sensor, against a fake plug on the test's Mosquitto."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.clock import ManualClock
from controller.config import parse_config
from controller.gateway import Gateway
from controller.hardware.factory import build_parts
from controller.hardware.gpio import pin_factory_from_name
from controller.hardware.interfaces import CurrentSensor, HardwareClosed, PartFailed, Switch
from controller.hardware.shelly import ShellyCurrent, ShellySwitch
from protocol.messages import MachineStateName
from tests.controller.fake_shelly import FakeShelly
from tests.controller.responder import MEMBER_BADGE, Responder
from tests.controller.support import gateway_config, machine_table
from tests.services import Mosquitto


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def plug(broker: Mosquitto, site_id: str) -> Iterator[FakeShelly]:
    fake = FakeShelly(broker.url, f"{site_id}/shellyplus1pm-a8032ab12345")
    yield fake
    fake.close()


def heard(part: ShellyCurrent | ShellySwitch) -> bool:
    """Whether the plug's part has subscribed and heard the plug (its first status)."""
    return wait_until(lambda: part.plug.heard_at is not None, 10)


def test_the_switch_is_turned_off_at_start_then_follows_on_and_off(
    broker: Mosquitto, plug: FakeShelly
) -> None:
    assert plug.output is True, "left on by whatever ran before"
    switch: Switch = ShellySwitch(broker.url, plug.prefix)
    try:
        assert wait_until(lambda: plug.output is False, 10), (
            "a restarted gateway never leaves a machine powered"
        )
        switch.on()
        assert plug.output is True
        assert switch.is_on
        switch.off()
        assert plug.output is False
        assert not switch.is_on
        assert plug.requests[-1] == {
            "id": plug.requests[-1]["id"],
            "src": plug.requests[-1]["src"],
            "method": "Switch.Set",
            "params": {"id": 0, "on": False},
        }
    finally:
        switch.close()
    with pytest.raises(HardwareClosed):
        switch.on()


def test_the_current_follows_the_plug(broker: Mosquitto, plug: FakeShelly) -> None:
    plug.output = False
    sensor: CurrentSensor = ShellyCurrent(broker.url, plug.prefix, poll_s=0.2)
    switch = ShellySwitch(broker.url, plug.prefix)
    try:
        assert isinstance(sensor, ShellyCurrent)
        assert sensor.plug is switch.plug, "one connection per plug"
        assert heard(switch)
        switch.on()
        plug.set_current(2.345)
        assert wait_until(lambda: sensor.amps() == pytest.approx(2.345))
        plug.current = 0.12  # changed without a notification: the next poll sees it
        assert wait_until(lambda: sensor.amps() == pytest.approx(0.12))
        assert "Switch.GetStatus" in plug.methods()
    finally:
        sensor.close()
        switch.close()


def test_a_plug_that_does_not_answer_fails_the_switch_in_time(broker: Mosquitto, plug: FakeShelly) -> None:
    switch = ShellySwitch(broker.url, plug.prefix, timeout_s=0.3)
    try:
        assert heard(switch)
        assert wait_until(lambda: plug.output is False)
        plug.answering = False
        started = time.monotonic()
        with pytest.raises(PartFailed, match=r"did not answer Switch\.Set within 0\.3 s") as raised:
            switch.on()
        assert time.monotonic() - started < 2
        assert isinstance(raised.value, OSError)
        assert not switch.is_on
    finally:
        switch.close()


def test_an_error_answer_fails_the_switch(broker: Mosquitto, plug: FakeShelly) -> None:
    switch = ShellySwitch(broker.url, plug.prefix)
    try:
        assert heard(switch)
        plug.error = {"code": -103, "message": "Invalid argument 'id': no such component"}
        with pytest.raises(PartFailed, match=r"refused Switch\.Set: .*no such component"):
            switch.on()
    finally:
        switch.close()


def test_a_silent_plug_fails_the_current_sensor(broker: Mosquitto, plug: FakeShelly) -> None:
    sensor = ShellyCurrent(broker.url, plug.prefix, poll_s=0.2)
    try:
        sensor.plug.stale_after_s = 1.0
        assert heard(sensor)
        plug.answering = False
        time.sleep(1.3)
        with pytest.raises(PartFailed, match="has not reported its status for"):
            sensor.amps()
        plug.answering = True
        assert wait_until(lambda: _reads(sensor))
    finally:
        sensor.close()


def _reads(sensor: CurrentSensor) -> bool:
    try:
        sensor.amps()
    except PartFailed:
        return False
    return True


def test_malformed_messages_are_logged_and_ignored(
    broker: Mosquitto, plug: FakeShelly, caplog: pytest.LogCaptureFixture
) -> None:
    sensor = ShellyCurrent(broker.url, plug.prefix, poll_s=0.2)
    switch = ShellySwitch(broker.url, plug.prefix)
    try:
        assert heard(switch), "subscribed: what the plug sends now arrives"
        with caplog.at_level(logging.WARNING):
            plug.send_raw("status/switch:0", b"{not json")
            plug.send_raw("status/switch:0", b"[1, 2]")
            plug.send_raw("status/switch:0", b'{"current": "lots", "output": "yes"}')
            plug.send_raw("events/rpc", b'{"method": "NotifyStatus", "params": 3}')
            assert wait_until(lambda: "ignored a message that is not a JSON object" in caplog.text)
            assert "ignored a message that is not JSON" in caplog.text
            switch.on()
            plug.set_current(3.5)
            assert wait_until(lambda: sensor.amps() == pytest.approx(3.5)), "the plug is still heard"
    finally:
        sensor.close()
        switch.close()


def test_the_factory_builds_both_parts_on_one_plug(broker: Mosquitto, plug: FakeShelly) -> None:
    shelly = {"type": "shelly", "device": plug.prefix, "mqtt_url": broker.url}
    table = machine_table(
        "sew-1", 17, current={**shelly, "poll_s": 0.5}, switch={**shelly, "timeout_ms": 500}
    )
    config = parse_config({"gateway": {"id": "gw-1", "site": "s"}, "machine": [table]}, environ={})
    parts = build_parts(config.machine("sew-1"), pin_factory_from_name("mock"))
    try:
        assert isinstance(parts.switch, ShellySwitch)
        assert isinstance(parts.current, ShellyCurrent)
        assert parts.switch.plug is parts.current.plug
    finally:
        parts.close()


def test_a_gateway_powers_a_machine_through_the_plug_and_meters_its_current(
    broker: Mosquitto, site_id: str, tmp_path: Path, plug: FakeShelly
) -> None:
    shelly = {"type": "shelly", "device": plug.prefix, "mqtt_url": broker.url}
    config = gateway_config(
        broker.url,
        site_id,
        tmp_path / "gw",
        sewing={"switch": shelly, "current": {**shelly, "poll_s": 0.2}},
        sample_interval_ms=10,
    )
    server = Responder(broker.url, site_id)
    clock = ManualClock(start=100.0)
    try:
        with Gateway(config, clock=clock) as gateway:
            assert gateway.wait_connected(10)
            sewing = gateway.machines["sew-1"]
            assert wait_until(lambda: plug.output is False)
            sewing.reader.tap(MEMBER_BADGE)  # type: ignore[attr-defined]
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.UNLOCKED, 5)
            assert plug.output is True
            plug.set_current(2.0)
            for second in range(1, 6):
                clock.set(100.0 + second)
                time.sleep(0.1)
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.RUNNING, 5)
    finally:
        server.close()

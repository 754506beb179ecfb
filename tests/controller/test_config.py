"""The gateway's TOML configuration: the example, and clear errors for bad files."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from controller.config import (
    EXAMPLE_CONFIG,
    BadConfig,
    BridgeButtonConfig,
    BridgeReaderConfig,
    GpioButtonConfig,
    GpioIndicatorConfig,
    GpioSwitchConfig,
    Mcp3008CurrentConfig,
    Pn532ReaderConfig,
    Rdm6300ReaderConfig,
    ShellyCurrentConfig,
    ShellySwitchConfig,
    SimulatedButtonConfig,
    load_config,
    parse_config,
)
from controller.metering import Calibration, Supply
from controller.station import rules_for
from protocol.messages import CertificationLevel


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE_CONFIG.read_text())


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(BadConfig) as raised:
        parse_config(data, source="gw.toml", environ={})
    return str(raised.value)


def test_the_example_parses() -> None:
    config = load_config(EXAMPLE_CONFIG, environ={})

    assert config.gateway.id == "atelier-gw-1"
    assert config.gateway.request_timeout_ms == 500
    assert config.gateway.sample_interval_ms == 100
    assert config.gateway.pin_factory == "mock"
    assert [m.id for m in config.machines] == ["sew-1", "print-1"]
    sewing = config.machine("sew-1")
    assert sewing.reader.type == "simulated"
    assert sewing.current.running_above_a == 0.5
    assert isinstance(sewing.switch, GpioSwitchConfig)
    assert sewing.switch.pin == 17
    assert sewing.switch.active_high is False
    assert isinstance(sewing.indicator, GpioIndicatorConfig)
    assert sewing.indicator.buzzer_pin == 13
    assert sewing.supervision_window_s == 300
    assert sewing.certify_level is CertificationLevel.AUTONOMOUS
    assert isinstance(sewing.button, SimulatedButtonConfig)
    printer = config.machine("print-1").indicator
    assert isinstance(printer, GpioIndicatorConfig)
    assert printer.buzzer_pin is None
    assert config.machine("print-1").button is None


def test_defaults_for_what_is_left_out() -> None:
    data = example()
    for key in (
        "request_timeout_ms",
        "sample_interval_ms",
        "telemetry_interval_s",
        "pin_factory",
        "state_dir",
    ):
        del data["gateway"][key]
    config = parse_config(data, environ={})

    assert config.gateway.request_timeout_ms == 500
    assert config.gateway.sample_interval_ms == 100
    assert config.gateway.pin_factory == "mock"
    assert config.gateway.state_dir == Path("/var/lib/atelier-gateway")


def test_the_environment_overrides_the_broker_url() -> None:
    config = load_config(
        EXAMPLE_CONFIG, environ={"ATELIER_MQTT_URL": "mqtts://gw:secret@broker.example:8883"}
    )

    assert config.gateway.broker.host == "broker.example"
    assert config.gateway.broker.tls is True
    assert config.gateway.broker.username == "gw"


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadConfig, match="no such configuration file"):
        load_config(tmp_path / "nope.toml")


def test_a_file_that_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[gateway]\nid = "gw-1"\nsite = \n')
    with pytest.raises(BadConfig, match=r"not valid TOML.*line 3"):
        load_config(path)


def test_a_misspelt_key_is_an_error_not_a_silent_default() -> None:
    data = example()
    data["machine"][0]["idle_timout_s"] = 60
    message = refused(data)

    assert "gw.toml" in message
    assert "[[machine]] #1 ('sew-1'): idle_timout_s: unknown key" in message


def test_every_problem_is_named_by_where_it_is() -> None:
    data = example()
    data["gateway"]["id"] = "Gateway One"
    data["gateway"]["mqtt_url"] = "http://broker"
    data["machine"][1]["current"]["running_above_a"] = -1
    del data["machine"][1]["switch"]["pin"]
    message = refused(data)

    assert "gateway.id: Expected `str` matching regex" in message
    assert "gateway.mqtt_url: MQTT URL must start with mqtt:// or mqtts://" in message
    assert "[[machine]] #2 ('print-1'): current.running_above_a: Expected `float` > 0" in message
    assert "[[machine]] #2 ('print-1'): switch.pin: Field required" in message


def test_problems_of_the_gateway_table_are_named_with_those_of_the_machines() -> None:
    data = example()
    data["gateway"] |= {"state_dir": 5, "allowlist_keys": {"site 1": "x" * 43}, "pin_factry": "lgpio"}
    data["machine"][0]["indicator"]["green_pin"] = True
    message = refused(data)

    assert "gateway.pin_factry: unknown key" in message
    assert "gateway.state_dir: Expected `Path`, got `int`" in message
    assert "gateway.allowlist_keys: key 'site 1': Expected `str` matching regex" in message
    assert "[[machine]] #1 ('sew-1'): indicator.green_pin: Expected `int | str`, got `bool`" in message


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("Qx1w", "an Ed25519 public key is 32 bytes, not 3"),
        ("not base64!", "the public key is not base64"),
    ],
)
def test_an_allowlist_key_that_is_no_public_key(text: str, complaint: str) -> None:
    data = example()
    data["gateway"]["allowlist_keys"] = {"site-1": text}
    assert f"gateway.allowlist_keys: allowlist key 'site-1': {complaint}" in refused(data)


def test_hysteresis_thresholds_the_wrong_way_round() -> None:
    data = example()
    data["machine"][0]["current"]["idle_below_a"] = 2.0
    assert "idle_below_a (2.0) must not be above running_above_a (0.5)" in refused(data)


def test_an_unknown_part_type() -> None:
    data = example()
    data["machine"][0]["reader"]["type"] = "rc522"
    assert (
        "[[machine]] #1 ('sew-1'): reader.type: unknown type 'rc522': "
        "expected 'simulated', 'rdm6300', 'pn532' or 'bridge'"
    ) in refused(data)


def test_a_bad_pin() -> None:
    data = example()
    data["machine"][0]["indicator"]["green_pin"] = "pin five"
    assert "indicator.green_pin: a pin is a BCM number from 0 to 53" in refused(data)


def test_two_machines_with_one_id() -> None:
    data = example()
    data["machine"][1]["id"] = "sew-1"
    assert "machine id 'sew-1' is used twice" in refused(data)


def test_two_parts_on_one_pin() -> None:
    data = example()
    data["machine"][1]["switch"]["pin"] = "GPIO17"
    assert "pin GPIO17 of print-1.switch.pin is already sew-1.switch.pin" in refused(data)


def test_a_gateway_without_machines() -> None:
    data = example()
    data["machine"] = []
    assert "machine: Expected `array` of length >= 1" in refused(data)
    del data["machine"]
    assert "machine: Field required" in refused(data)


def test_replace_gateway_validates_the_change(tmp_path: Path) -> None:
    config = load_config(EXAMPLE_CONFIG, environ={})
    moved = config.replace_gateway(mqtt_url="mqtt://10.0.0.2:1884", state_dir=str(tmp_path / "gw"))

    assert moved.gateway.broker.port == 1884
    assert moved.gateway.state_dir == tmp_path / "gw"
    assert moved.machines == config.machines
    with pytest.raises(BadConfig, match="request_timeout_ms"):
        config.replace_gateway(request_timeout_ms=0)


def test_no_more_machines_than_a_status_can_list() -> None:
    data = example()
    template = data["machine"][0]
    data["machine"] = [
        {
            **template,
            "id": f"m-{n}",
            "switch": {"type": "gpio", "pin": f"BOARD{n}"},
            "indicator": template["indicator"],
        }
        for n in range(33)
    ]
    assert "machine: Expected `array` of length <= 32" in refused(data)


def test_supervision_defaults_for_what_is_left_out() -> None:
    data = example()
    for key in ("supervision_window_s", "certify_level", "button"):
        data["machine"][0].pop(key, None)
    sewing = parse_config(data, environ={}).machine("sew-1")

    assert sewing.supervision_window_s == 300.0
    assert sewing.certify_level is CertificationLevel.AUTONOMOUS
    assert sewing.button is None


def test_supervision_settings_of_a_machine() -> None:
    data = example()
    data["machine"][1] |= {
        "supervision_window_s": 0,
        "certify_level": "supervised",
        "button": {"type": "gpio", "pin": "GPIO26"},
    }
    printer = parse_config(data, environ={}).machine("print-1")

    assert printer.supervision_window_s == 0, "0 turns supervision at this machine off"
    assert printer.certify_level is CertificationLevel.SUPERVISED
    assert isinstance(printer.button, GpioButtonConfig)
    assert (printer.button.pin, printer.button.pull_up, printer.button.bounce_ms) == ("GPIO26", True, 50)


def test_bad_supervision_settings_are_named() -> None:
    data = example()
    data["machine"][0] |= {
        "supervision_window_s": -1,
        "certify_level": "expert",
        "button": {"type": "gpio"},
    }
    message = refused(data)

    assert "[[machine]] #1 ('sew-1'): supervision_window_s: Expected `float` >= 0" in message
    assert (
        "[[machine]] #1 ('sew-1'): certify_level: Invalid enum value 'expert': "
        "expected 'supervised', 'autonomous' or 'trainer'"
    ) in message
    assert "[[machine]] #1 ('sew-1'): button.pin: Field required" in message


def test_an_unknown_button_type() -> None:
    data = example()
    data["machine"][0]["button"] = {"type": "keypad"}
    assert "button.type: unknown type 'keypad': expected 'simulated', 'gpio' or 'bridge'" in refused(data)


def test_a_button_on_a_pin_already_used() -> None:
    data = example()
    data["machine"][1]["button"] = {"type": "gpio", "pin": 17}
    assert "pin 17 of print-1.button.pin is already sew-1.switch.pin" in refused(data)


def test_calibration_and_supply_of_a_machine() -> None:
    config = load_config(EXAMPLE_CONFIG, environ={})
    sewing = config.machine("sew-1").current
    assert (sewing.scale, sewing.offset_a, sewing.voltage_v, sewing.power_factor) == (1.0, 0.0, 230, 0.8)

    rules = rules_for(config.machine("sew-1"), 500)
    assert rules.calibration == Calibration(1.0, 0.0)
    assert rules.supply == Supply(230, 0.8)

    printer = config.machine("print-1").current  # left out: no correction, no voltage
    assert (printer.scale, printer.offset_a, printer.voltage_v, printer.power_factor) == (1.0, 0.0, None, 1.0)
    assert rules_for(config.machine("print-1"), 500).supply is None


def test_bad_calibration_and_supply_are_named() -> None:
    data = example()
    data["machine"][0]["current"] |= {"scale": 0, "offset_a": -500, "voltage_v": -230, "power_factor": 1.2}
    message = refused(data)

    where = "[[machine]] #1 ('sew-1'): current."
    assert f"{where}scale: Expected `float` > 0" in message
    assert f"{where}offset_a: Expected `float` >= -100" in message
    assert f"{where}voltage_v: Expected `float` > 0" in message
    assert f"{where}power_factor: Expected `float` <= 1" in message


# The hardware part types.


def uncommented_examples() -> str:
    """The commented machines at the end of the example file, uncommented."""
    text = EXAMPLE_CONFIG.read_text()
    tail = text[text.index("# A machine behind a Shelly") :]
    lines = [
        line[2:]
        for line in tail.splitlines()
        if line.startswith("# [") or (line.startswith("# ") and " = " in line)
    ]
    return "\n".join(lines)


def test_the_commented_machines_of_the_example_are_valid() -> None:
    data = tomllib.loads(EXAMPLE_CONFIG.read_text() + "\n" + uncommented_examples())
    config = parse_config(data, environ={})
    kiln, laser = config.machine("kiln-1"), config.machine("laser-1")
    assert isinstance(kiln.reader, Pn532ReaderConfig)
    assert isinstance(kiln.current, ShellyCurrentConfig)
    assert kiln.current.running_above_a == 1.0
    assert isinstance(kiln.switch, ShellySwitchConfig)
    assert isinstance(laser.reader, BridgeReaderConfig)
    assert isinstance(laser.button, BridgeButtonConfig)
    assert laser.current.running_above_a == 0.5


def test_readers_and_clamps_on_a_pi() -> None:
    data = example()
    data["machine"][0]["reader"] = {"type": "rdm6300", "port": "/dev/serial0"}
    data["machine"][0]["current"] = {"type": "mcp3008", "channel": 0, "running_above_a": 0.8}
    data["machine"][1]["reader"] = {"type": "pn532", "port": "/dev/ttyUSB0", "poll_interval_ms": 200}
    data["machine"][1]["current"] = {"type": "mcp3008", "channel": 1, "amps_per_volt": 60.6}
    config = parse_config(data, environ={})
    sewing, printer = config.machines
    assert isinstance(sewing.reader, Rdm6300ReaderConfig)
    assert sewing.reader.debounce_s == 1.0
    assert isinstance(sewing.current, Mcp3008CurrentConfig)
    assert (sewing.current.cycles, sewing.current.mains_hz, sewing.current.amps_per_volt) == (10, 50.0, 30.0)
    assert rules_for(sewing, 500).running_above_a == 0.8
    assert isinstance(printer.reader, Pn532ReaderConfig)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            lambda d: d["machine"][0].update(
                reader={"type": "rdm6300", "port": "/dev/serial0", "baud": 9600}
            ),
            "[[machine]] #1 ('sew-1'): reader.baud: unknown key",
        ),
        (
            lambda d: d["machine"][0].update(reader={"type": "rdm6300"}),
            "[[machine]] #1 ('sew-1'): reader.port: Field required",
        ),
        (
            lambda d: d["machine"][0].update(current={"type": "mcp3008", "channel": 8}),
            "[[machine]] #1 ('sew-1'): current.channel: Expected `int` <= 7",
        ),
        (
            lambda d: d["machine"][0].update(switch={"type": "shelly", "device": "a b", "mqtt_url": "x"}),
            "switch.device: a Shelly topic prefix has letters, digits and - _ / . only, not 'a b'",
        ),
        (
            lambda d: (
                d["machine"][0].update(reader={"type": "rdm6300", "port": "/dev/serial0"}),
                d["machine"][1].update(reader={"type": "pn532", "port": "/dev/serial0"}),
            ),
            "serial port '/dev/serial0' of print-1.reader.port is already sew-1.reader.port",
        ),
        (
            lambda d: (
                d["machine"][0].update(reader={"type": "bridge", "port": "/dev/ttyACM0"}),
                d["machine"][1].update(reader={"type": "bridge", "port": "/dev/ttyACM0"}),
            ),
            "print-1.reader.port: channel 0 of the bridge on '/dev/ttyACM0' already has a reader",
        ),
        (
            lambda d: (
                d["machine"][0].update(current={"type": "mcp3008", "channel": 0}),
                d["machine"][1]["indicator"].update(red_pin="GPIO10"),
            ),
            "pin 10 of print-1.indicator.red_pin is SPI0's MOSI, which the MCP3008 current clamps use",
        ),
    ],
)
def test_bad_part_tables_are_named(change: Any, complaint: str) -> None:
    data = example()
    change(data)
    assert complaint in refused(data)


def test_two_machines_share_a_bridge_on_their_own_channels() -> None:
    data = example()
    data["machine"][0]["reader"] = {"type": "bridge", "port": "/dev/ttyACM0"}
    data["machine"][1]["reader"] = {"type": "bridge", "port": "/dev/ttyACM0", "channel": 1}
    data["machine"][1]["switch"] = {"type": "bridge", "port": "/dev/ttyACM0", "channel": 1}
    config = parse_config(data, environ={})
    assert [m.reader.type for m in config.machines] == ["bridge", "bridge"]

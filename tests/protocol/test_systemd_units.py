"""hardware/systemd: the units say what hardware/README.md promises."""

import configparser
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "hardware" / "systemd"


def _unit(name: str) -> configparser.RawConfigParser:
    # systemd allows repeated keys; for these checks the last one is enough.
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


@pytest.mark.parametrize(
    ("name", "command", "environment"),
    [
        (
            "atelier-gateway.service",
            "/opt/atelier/venv/bin/atelier gateway --config /etc/atelier/gateway.toml",
            "/etc/atelier/gateway.env",
        ),
        ("atelier-server.service", "/opt/atelier/venv/bin/atelier server", "/etc/atelier/server.env"),
    ],
)
def test_a_unit_runs_its_command_as_a_dedicated_user_and_restarts_on_failure(
    name: str, command: str, environment: str
) -> None:
    service = _unit(name)["Service"]
    assert service["ExecStart"] == command
    assert service["User"] == "atelier"
    assert service["Group"] == "atelier"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == environment
    assert service["StateDirectory"] == "atelier"
    assert service["NoNewPrivileges"] == "true"
    assert _unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_the_gateway_keeps_its_devices_and_never_stops_retrying() -> None:
    unit = _unit("atelier-gateway.service")
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert set(unit["Service"]["SupplementaryGroups"].split()) >= {"gpio", "spi", "dialout"}
    assert "PrivateDevices" not in unit["Service"]
    assert "ProtectKernelTunables" not in unit["Service"]
    assert unit["Service"]["KillSignal"] == "SIGTERM"

"""``atelier gateway --config FILE`` as an operator runs it: a process, stopped by a signal."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import EXIT_BAD_CONFIG, add_commands
from protocol.messages import GatewayState
from tests.controller.responder import Responder, retained_status
from tests.services import Mosquitto

# The lead wires add_commands into the `atelier` console script; this is the same wiring.
MAIN = """
import argparse, sys
from controller.cli import add_commands
parser = argparse.ArgumentParser(prog="atelier")
add_commands(parser.add_subparsers(required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="atelier")
    add_commands(main.add_subparsers(required=True))
    return main


def write_config(path: Path, broker_url: str, site: str, state_dir: Path) -> Path:
    path.write_text(
        f"""
[gateway]
id = "gw-cli"
site = "{site}"
mqtt_url = "{broker_url}"
state_dir = "{state_dir}"

[[machine]]
id = "sew-1"
name = "Sewing machine"
[machine.reader]
type = "simulated"
[machine.current]
type = "simulated"
[machine.switch]
type = "gpio"
pin = 17
[machine.indicator]
type = "gpio"
green_pin = 5
red_pin = 6
"""
    )
    return path


def test_the_command_is_registered() -> None:
    args = parser().parse_args(["gateway", "--config", "gw.toml"])

    assert args.config == Path("gw.toml")
    assert callable(args.func)


def test_a_bad_configuration_exits_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[gateway]\nid = "gw-cli"\n')
    args = parser().parse_args(["gateway", "--config", str(path)])

    assert args.func(args) == EXIT_BAD_CONFIG
    error = capsys.readouterr().err
    assert "gateway.site: Field required" in error
    assert "machine: Field required" in error


def test_the_gateway_runs_until_sigterm_and_stops_cleanly(
    broker: Mosquitto, site_id: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "gw.toml", broker.url, site_id, tmp_path / "state")
    server = Responder(broker.url, site_id)
    process = subprocess.Popen(
        [sys.executable, "-c", MAIN, "gateway", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        assert server.wait_for(lambda seen: any(s.state is GatewayState.ONLINE for s in seen.statuses), 20)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server.close()

    assert process.returncode == 0, output.decode(errors="replace")
    assert b"received SIGTERM: stopping" in output
    status = retained_status(broker.url, site_id, "gw-cli")
    assert status is not None
    assert status.state is GatewayState.OFFLINE
    assert (tmp_path / "state" / "journal.sqlite3").exists()

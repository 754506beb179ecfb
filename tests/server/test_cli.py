"""``atelier db upgrade`` and ``atelier server``, as the console script will run them."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import httpx2 as httpx
import pytest
import sqlalchemy as sa

from server.cli import add_commands
from server.db import make_engine
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import FakeGateway
from tests.services import Mosquitto, free_port

# The console script's shape: `atelier <command> ...` with each command's func.
ATELIER = """
import argparse, sys
from server.cli import add_commands
parser = argparse.ArgumentParser(prog="atelier")
add_commands(parser.add_subparsers(required=True))
args = parser.parse_args()
sys.exit(args.func(args))
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atelier")
    add_commands(parser.add_subparsers(required=True))
    return parser


def test_arguments() -> None:
    args = parser().parse_args(["server", "--host", "0.0.0.0", "--port", "9000"])  # noqa: S104
    assert (args.host, args.port, callable(args.func)) == ("0.0.0.0", 9000, True)  # noqa: S104
    assert parser().parse_args(["db", "upgrade"]).revision == "head"
    with pytest.raises(SystemExit):
        parser().parse_args(["db"])


def test_db_upgrade(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    args = parser().parse_args(["db", "upgrade"])
    assert args.func(args) == 0
    engine = make_engine(database_url)
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    assert {"members", "machines", "usage_sessions", "alembic_version"} <= tables


def test_server_answers_api_and_gateways(database_url: str, broker: Mosquitto, workshop: Workshop) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ATELIER_DATABASE_URL": database_url,
        "ATELIER_MQTT_URL": broker.url,
        "ATELIER_SITE": workshop.site,
    }
    command = [sys.executable, "-c", ATELIER, "server", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        health = wait_until_ready(port, process)
        assert health == {"status": "ok", "database": "ok", "mqtt": "connected"}
        members = httpx.get(f"http://127.0.0.1:{port}/api/v1/members").json()
        assert len(members) == 6
        gateway = FakeGateway(broker.url, workshop.site, workshop.gateway)
        try:
            assert gateway.ask("sewing-1", workshop.alice_badge).granted
        finally:
            gateway.close()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode(errors="replace")


def wait_until_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise AssertionError(f"the server exited with {process.returncode}:\n{output}")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
        except httpx.TransportError:
            health = None
        if health is not None and health.get("mqtt") == "connected":
            return health
        time.sleep(0.05)
    raise AssertionError(f"the server was not ready within {timeout} s")

"""The gateway speaks systemd's notification protocol: READY, WATCHDOG while its worker runs, STOPPING."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.sdnotify import Notifier
from tests.controller.test_cli import MAIN, write_config
from tests.services import Mosquitto


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def test_a_notifier_sends_one_datagram_per_state(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})

    assert notifier.notify("READY=1")
    assert sock.recv(256) == b"READY=1"
    assert notifier.watchdog_s == 30.0
    assert notifier.ping_every_s == 15.0


def test_an_abstract_socket_name_starts_with_a_nul() -> None:
    name = f"atelier-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify("WATCHDOG=1")
        assert sock.recv(64) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.notify("READY=1")
    assert notifier.watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_s is None, (
        "for another process"
    )


def test_the_gateway_process_is_ready_feeds_the_watchdog_and_says_it_stops(
    broker: Mosquitto, site_id: str, tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    config = write_config(tmp_path / "gw.toml", broker.url, site_id, tmp_path / "state")
    process = subprocess.Popen(
        [sys.executable, "-c", MAIN, "gateway", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"},
    )
    try:
        assert sock.recv(64) == b"READY=1"
        started = time.monotonic()
        assert sock.recv(64) == b"WATCHDOG=1"
        assert sock.recv(64) == b"WATCHDOG=1"
        assert time.monotonic() - started < 3, "pinged at least every WATCHDOG_USEC / 2"
        process.send_signal(signal.SIGTERM)
        while (message := sock.recv(64)) == b"WATCHDOG=1":
            pass
        assert message == b"STOPPING=1"
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""The demo's MQTT broker: Mosquitto when it is installed, else amqtt in-process.

Either way it listens on loopback only, allows anonymous clients (the demo is
a closed box on one machine) and is gone when the demo stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class BrokerDidNotStart(RuntimeError):
    """Neither Mosquitto nor amqtt could listen on the chosen port."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, timeout: float, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise BrokerDidNotStart(f"the broker exited before listening on port {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise BrokerDidNotStart(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")


@contextlib.contextmanager
def mosquitto_broker(binary: str, port: int) -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="atelier-demo-broker-"))
    (directory / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        # Nagle's algorithm would hold small MQTT packets back by tens of ms.
        "set_tcp_nodelay true\n"
        "persistence false\n"
    )
    with contextlib.suppress(KeyError, PermissionError):  # it drops root for this user
        user = pwd.getpwnam("mosquitto")
        os.chown(directory, user.pw_uid, user.pw_gid)
    with open(directory / "mosquitto.log", "wb") as output:
        process = subprocess.Popen(
            [binary, "-c", str(directory / "mosquitto.conf")], stdout=output, stderr=output
        )
    try:
        _wait_listening(port, 10, alive=lambda: process.poll() is None)
        yield f"Mosquitto ({binary})"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def amqtt_broker(port: int) -> Iterator[str]:
    """amqtt on its own event loop in a thread of this process."""
    from amqtt.broker import Broker  # noqa: PLC0415 - only needed without Mosquitto

    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    holder: list[Any] = []

    async def start() -> None:
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
        await broker.start()
        holder.append(broker)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as error:  # reported to the starting thread
            failure.append(error)
            started.set()
            return
        started.set()
        loop.run_forever()

    # amqtt logs every packet at INFO; the demo narrates what matters itself.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
    thread.start()
    started.wait(10)
    if failure or not holder:
        raise BrokerDidNotStart(f"amqtt did not start: {failure[0] if failure else 'timed out'}")
    try:
        # broker.start() returned, so it listens: a probe connection would only log an error.
        yield "amqtt (in-process)"
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(holder[0].shutdown(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


@contextlib.contextmanager
def embedded_broker(port: int | None = None, *, prefer_mosquitto: bool = True) -> Iterator[tuple[str, str]]:
    """Start a broker for the demo; yields ``(mqtt_url, description)``."""
    port = port or free_port()
    binary = find_mosquitto() if prefer_mosquitto else None
    chosen = mosquitto_broker(binary, port) if binary else amqtt_broker(port)
    with chosen as description:
        yield f"mqtt://127.0.0.1:{port}", description

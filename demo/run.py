"""``atelier demo``: broker, server and two simulated gateways in one process.

They meet only through MQTT, exactly as they would across a workshop: the
demo starts a broker (Mosquitto when installed, else amqtt in-process), the
server on SQLite (or ``ATELIER_DATABASE_URL``) with its API on
http://127.0.0.1:8000, and the ``textile`` and ``fablab`` gateways on
simulated readers and current clamps with gpiozero's mock pins. Then members
come and go, and what happens is told as it crosses the broker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from controller.config import parse_config
from controller.gateway import Gateway
from demo.broker import embedded_broker
from demo.narrator import Narrator
from demo.scenario import SESSIONS_PER_ROUND, Scenario
from demo.workshop import GATEWAYS, SITE, gateway_config, seed
from server.app import create_app
from server.settings import Settings

log = logging.getLogger(__name__)


class DemoFailed(RuntimeError):
    """Something the demo needs did not come up; the message says what."""


class Teller:
    """Prints a line with the time since the demo started."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self._started:6.1f}s] {line}", flush=True)


@dataclass(frozen=True)
class DemoOptions:
    port: int = 8000
    once: bool = False
    database_url: str | None = None  # else ATELIER_DATABASE_URL, else a fresh SQLite file
    mqtt_url: str | None = None  # else ATELIER_MQTT_URL, else a broker of its own
    prefer_mosquitto: bool = True
    data_dir: Path = Path("var/demo")


def run_demo(options: DemoOptions) -> int:
    say = Teller()
    try:
        with _workshop(options, say) as (scenario, narrator, api_url):
            return _play(scenario, narrator, api_url, options, say)
    except DemoFailed as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("Ctrl-C: stopped.")
        return 0


def _play(scenario: Scenario, narrator: Narrator, api_url: str, options: DemoOptions, say: Teller) -> int:
    stop = threading.Event()
    rounds = 0
    try:
        while True:
            rounds += 1
            say(f"--- round {rounds}: members arrive ---")
            scenario.play(stop)
            ended = _wait_sessions(api_url, rounds * SESSIONS_PER_ROUND, timeout=20)
            _summary(api_url, say)
            if options.once:
                if ended < rounds * SESSIONS_PER_ROUND:
                    say(f"only {ended} of {rounds * SESSIONS_PER_ROUND} sessions were recorded")
                    return 1
                say("Done: every session was recorded once.")
                return 0
            say("Next round in 5 s (Ctrl-C to stop).")
            time.sleep(5)
    finally:
        stop.set()


@contextlib.contextmanager
def _workshop(options: DemoOptions, say: Teller) -> Iterator[tuple[Scenario, Narrator, str]]:
    database_url = (
        options.database_url or os.environ.get("ATELIER_DATABASE_URL") or _fresh_sqlite(options.data_dir)
    )
    _check_port_free(options.port)
    say("Atelier Access demo: a shared textile atelier with a fablab corner.")
    mqtt_url = options.mqtt_url or os.environ.get("ATELIER_MQTT_URL")
    broker = contextlib.nullcontext((mqtt_url, "the broker at ATELIER_MQTT_URL")) if mqtt_url else None
    with broker or embedded_broker(prefer_mosquitto=options.prefer_mosquitto) as (url, description):
        say(f"MQTT broker: {description} at {url}")
        say(
            f"Database: {_shown(database_url)}"
            + (" (seeded now)" if seed(database_url) else " (already seeded)")
        )
        api_url = f"http://127.0.0.1:{options.port}"
        settings = Settings(database_url=database_url, mqtt_url=url, site=SITE, http_port=options.port)
        with _server(settings, api_url), _narrator(url, say) as narrator, _gateways(url) as gateways:
            say(f"Server ready: {api_url}/api/v1/docs (API), {api_url}/api/v1/sessions (usage sessions)")
            yield Scenario(gateways, api_url, say), narrator, api_url


def _fresh_sqlite(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"atelier.db{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{data_dir.resolve() / 'atelier.db'}"


def _shown(url: str) -> str:
    """The database URL without its password."""
    head, sep, tail = url.partition("@")
    return f"{head.split(':')[0]}://…@{tail}" if sep and ":" in head.split("//", 1)[-1] else url


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        # As uvicorn does: a socket of the last run still in TIME_WAIT does not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DemoFailed(f"port {port} is in use: stop what runs there, or pass --port") from None


@contextlib.contextmanager
def _server(settings: Settings, api_url: str) -> Iterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.http_port, log_level="warning")
    )
    # uvicorn installs signal handlers only in the main thread; Ctrl-C stays the demo's.
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while _health(api_url).get("mqtt") != "connected":
            if time.monotonic() > deadline or not thread.is_alive():
                raise DemoFailed(f"the server did not come up at {api_url}")
            time.sleep(0.1)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _health(api_url: str) -> dict[str, Any]:
    try:
        return dict(_get(api_url, "/healthz"))
    except OSError:
        return {}


def _get(api_url: str, path: str) -> Any:
    with urllib.request.urlopen(api_url + path, timeout=5) as response:  # noqa: S310 - our own loopback API
        return json.loads(response.read())


@contextlib.contextmanager
def _narrator(mqtt_url: str, say: Teller) -> Iterator[Narrator]:
    narrator = Narrator(mqtt_url, SITE, say)
    narrator.start()
    try:
        yield narrator
    finally:
        narrator.stop()


@contextlib.contextmanager
def _gateways(mqtt_url: str) -> Iterator[dict[str, Gateway]]:
    state_dir = Path(tempfile.mkdtemp(prefix="atelier-demo-gateways-"))
    gateways: dict[str, Gateway] = {}
    try:
        for spec in GATEWAYS:
            config = parse_config(
                gateway_config(spec, mqtt_url, state_dir), source=f"demo gateway {spec.id}", environ={}
            )
            gateway = Gateway(config)
            gateway.start()
            gateways[spec.id] = gateway
        for gateway_id, gateway in gateways.items():
            if not gateway.wait_connected(10):
                raise DemoFailed(f"gateway {gateway_id} could not reach the broker")
        yield gateways
    finally:
        for gateway in gateways.values():
            gateway.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


def _wait_sessions(api_url: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    ended = 0
    while time.monotonic() < deadline:
        ended = sum(1 for s in _get(api_url, "/api/v1/sessions?limit=500") if s["ended_at"] is not None)
        if ended >= expected:
            break
        time.sleep(0.25)
    return ended


def _summary(api_url: str, say: Teller) -> None:
    names = {m["id"]: m["name"] for m in _get(api_url, "/api/v1/members?limit=500")}
    sessions = _get(api_url, "/api/v1/sessions?limit=500")
    say(f"The server recorded {len(sessions)} usage sessions (GET {api_url}/api/v1/sessions). Latest:")
    for s in sessions[:SESSIONS_PER_ROUND]:
        who = names.get(s["member_id"], "?")
        say(
            f"    {s['machine']:<13} {who:<15} running {s['running_ms'] / 1000:5.1f} s  "
            f"idle {s['idle_ms'] / 1000:5.1f} s  ({s['end_reason'] or 'open'})"
        )

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
import faulthandler
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from controller.config import parse_config
from controller.gateway import Gateway
from demo.broker import embedded_broker
from demo.narrator import Narrator
from demo.scenario import Scenario, round_steps, sessions_in
from demo.workshop import GATEWAYS, SITE, DemoAccount, gateway_config, seed
from server.app import create_app
from server.settings import Settings
from server.signing import create_key_file, load_signing_key

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
    history: int = 0  # months of past usage and billing to add after the seed (--history)


@dataclass(frozen=True)
class _Api:
    """The demo's own reads of the server's API, with an API token of the manager's."""

    url: str
    token: str

    def get(self, path: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - our own loopback API
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own loopback API
            return json.loads(response.read())


STOP_WITHIN_S = 30
"""After Ctrl-C, the demo stops its parts in order; should one of them hang, every thread's
stack is printed (to find which) and the process ends anyway after this long."""


def _on_ctrl_c(signum: int, frame: FrameType | None) -> None:
    faulthandler.dump_traceback_later(STOP_WITHIN_S, exit=True)
    raise KeyboardInterrupt


def run_demo(options: DemoOptions) -> int:
    say = Teller()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        with _workshop(options, say) as (scenario, narrator, api):
            return _play(scenario, narrator, api, options, say)
    except DemoFailed as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("Ctrl-C: stopped.")
        return 0


def _play(scenario: Scenario, narrator: Narrator, api: _Api, options: DemoOptions, say: Teller) -> int:
    stop = threading.Event()
    rounds = 0
    expected = 0
    # Only this run's sessions count: a database given by ATELIER_DATABASE_URL may hold older ones.
    since = datetime.now(UTC).isoformat()
    try:
        while True:
            rounds += 1
            say(f"--- round {rounds}: members arrive ---")
            steps = round_steps(rounds)
            scenario.play(stop, steps)
            expected += sessions_in(steps)
            ended = _wait_sessions(api, since, expected, timeout=20)
            _summary(api, since, say)
            if options.once:
                if ended != expected:
                    say(f"{ended} sessions were recorded, {expected} were expected")
                    return 1
                say(f"Done: all {expected} sessions were recorded, each once.")
                return 0
            say("Next round in 5 s (Ctrl-C to stop).")
            time.sleep(5)
    finally:
        stop.set()


@contextlib.contextmanager
def _workshop(options: DemoOptions, say: Teller) -> Iterator[tuple[Scenario, Narrator, _Api]]:
    database_url = (
        options.database_url or os.environ.get("ATELIER_DATABASE_URL") or _fresh_sqlite(options.data_dir)
    )
    _check_port_free(options.port)
    say("Atelier Access demo: a shared textile atelier with a fablab corner.")
    mqtt_url = options.mqtt_url or os.environ.get("ATELIER_MQTT_URL")
    broker = contextlib.nullcontext((mqtt_url, "the broker at ATELIER_MQTT_URL")) if mqtt_url else None
    with (
        contextlib.ExitStack() as stack,
        broker or embedded_broker(prefer_mosquitto=options.prefer_mosquitto) as (url, description),
    ):
        say(f"MQTT broker: {description} at {url}")
        seeded = seed(database_url)
        say(
            f"Database: {_shown(database_url)}" + (" (seeded now)" if seeded.created else " (already seeded)")
        )
        if options.history:
            _seed_history(database_url, options.history, say)
        api_url = f"http://127.0.0.1:{options.port}"
        keys = stack.enter_context(_site_key())
        settings = Settings(
            database_url=database_url,
            mqtt_url=url,
            site=SITE,
            http_port=options.port,
            signing_key_file=keys.path,
            signing_key_id=keys.key_id,
        )
        with (
            _server(settings, api_url) as server,
            _narrator(url, say) as narrator,
            _gateways(url, {keys.key_id: keys.public_text}) as gateways,
        ):
            say(f"Server ready: {api_url}/api/v1/docs (the API; sign in or use a token, below)")
            say(f"Web interface: {api_url}/ (sign in with an e-mail and password below; French, or English)")
            say(
                f"Also: {api_url}/metrics (Prometheus metrics, public), "
                f"{api_url}/api/v1/reports/utilisation (hours running against hours powered: "
                "treasurer, manager)"
            )
            say(
                f"Gateways verify the allowlist the server signs with {keys.key_id} "
                f"(public key {keys.public_text[:12]}…): they decide alone when it does not answer."
            )
            _show_accounts(api_url, seeded.accounts, say)
            yield (
                Scenario(gateways, api_url, say, server, seeded.own_token),
                narrator,
                _Api(api_url, seeded.own_token),
            )


def _seed_history(database_url: str, months: int, say: Teller) -> None:
    from demo.history import describe, seed_history, treasurer_commands  # noqa: PLC0415

    history = seed_history(database_url, months)
    for line in describe(history):
        say(line)
    # A URL with a password is not printed: the commands then read it from the environment.
    url = database_url if _shown(database_url) == database_url else '"$ATELIER_DATABASE_URL"'
    say("To close the last full month and export it (in another terminal, while the demo runs):")
    for command in treasurer_commands(url, history, history.months[-1].next().first_day):
        say(f"    {command}")


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


@dataclass(frozen=True)
class _SiteKey:
    path: Path
    key_id: str
    public_text: str


@contextlib.contextmanager
def _site_key() -> Iterator[_SiteKey]:
    """A signing key for this run only, as `atelier keys create` makes one."""
    folder = Path(tempfile.mkdtemp(prefix="atelier-demo-key-"))
    try:
        path = folder / "site-signing-key.pem"
        create_key_file(path)
        key = load_signing_key(path)
        assert key is not None
        yield _SiteKey(path, key.key_id, key.public_text)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _ServerLink:
    """The demo's outage: stops and restarts the server's MQTT service (the API stays up)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def down(self) -> None:
        service = self._app.state.mqtt
        if service is not None:
            service.stop()

    def up(self) -> None:
        service = self._app.state.mqtt
        if service is not None:
            service.start()


@contextlib.contextmanager
def _server(settings: Settings, api_url: str) -> Iterator[_ServerLink]:
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=settings.http_port,
            log_level="warning",
            timeout_graceful_shutdown=2,  # an open live page (a stream) must not hold up Ctrl-C
        )
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
        yield _ServerLink(app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _health(api_url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(api_url + "/healthz", timeout=5) as response:  # noqa: S310 - our own loopback API
            return dict(json.loads(response.read()))
    except OSError:
        return {}


@contextlib.contextmanager
def _narrator(mqtt_url: str, say: Teller) -> Iterator[Narrator]:
    narrator = Narrator(mqtt_url, SITE, say)
    narrator.start()
    try:
        yield narrator
    finally:
        narrator.stop()


@contextlib.contextmanager
def _gateways(mqtt_url: str, allowlist_keys: dict[str, str]) -> Iterator[dict[str, Gateway]]:
    state_dir = Path(tempfile.mkdtemp(prefix="atelier-demo-gateways-"))
    gateways: dict[str, Gateway] = {}
    try:
        for spec in GATEWAYS:
            config = parse_config(
                gateway_config(spec, mqtt_url, state_dir, allowlist_keys),
                source=f"demo gateway {spec.id}",
                environ={},
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


_VIEWS = {
    "member": "/api/v1/me/decisions",
    "trainer": "/api/v1/training/expiring?days=365",
    "treasurer": "/api/v1/sessions",
    "manager": "/api/v1/audit",
}


def _show_accounts(api_url: str, accounts: tuple[DemoAccount, ...], say: Teller) -> None:
    say("Sign in as each role (passwords made for this run; the web interface will take the same):")
    for account in accounts:
        say(
            f"    {account.role:<10} {account.name:<15} curl -c {account.role}.jar "
            f"-d login={account.login} -d password={account.password} {api_url}/api/v1/auth/login"
        )
    say(
        f"    then: curl -b member.jar {api_url}/api/v1/me  (a POST, PUT, PATCH or DELETE also sends "
        "-H 'X-CSRF-Token: <the csrf_token of the sign-in answer>')"
    )
    say("API tokens made for this run (member, trainer, treasurer, manager), to try the API while it runs:")
    for account in accounts:
        say(
            f"    {account.name:<15} curl -H 'Authorization: Bearer {account.token}' "
            f"{api_url}{_VIEWS[account.role]}"
        )


def _sessions_since(api: _Api, since: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"since": since, "limit": 500})
    return list(api.get(f"/api/v1/sessions?{query}"))


def _wait_sessions(api: _Api, since: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    ended = 0
    while time.monotonic() < deadline:
        ended = sum(1 for s in _sessions_since(api, since) if s["ended_at"] is not None)
        if ended >= expected:
            break
        time.sleep(0.25)
    return ended


def _summary(api: _Api, since: str, say: Teller) -> None:
    names = {m["id"]: m["name"] for m in api.get("/api/v1/members?limit=500")}
    sessions = _sessions_since(api, since)
    say(f"The server recorded {len(sessions)} usage sessions in this run (GET {api.url}/api/v1/sessions):")
    for s in sorted(sessions, key=lambda s: str(s["started_at"]))[-12:]:
        who = names.get(s["member_id"], "?")
        supervisor = f", supervised by {names.get(s['supervisor_id'], '?')}" if s.get("supervisor_id") else ""
        say(
            f"    {s['machine']:<13} {who:<15} running {s['running_ms'] / 1000:5.1f} s  "
            f"idle {s['idle_ms'] / 1000:5.1f} s  ({s['end_reason'] or 'open'}{supervisor})"
        )

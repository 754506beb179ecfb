"""The pieces of a fault test: a broker, a server and gateways as real processes that
can be killed with SIGKILL and started again, and the books that say whether every
sensed minute was billed exactly once and every relay was switched safely.

* :class:`Broker`: a Mosquitto of our own on a fixed port, with persistence on or off;
  :meth:`Broker.kill` is ``kill -9``, :meth:`Broker.restart` brings it back on the same port.
* :class:`ServerProcess`: ``atelier server`` configured by ``ATELIER_*`` variables.
* :class:`GatewayProcess`: the gateway daemon in ``python -m tests.faults.gateway_process``,
  whose simulated badge readers and current clamps the test drives.
* :func:`books`: the gateway's journal (what it sensed) against the server's usage
  sessions (what it billed), session by session.
* :func:`unsafe_relay_changes`: every relay change the gateway made that it must not have.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as paho
import sqlalchemy as sa

from protocol.messages import EventAck, EventKind, UsageEvent, decode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, topic
from server import workshop
from server.db import make_engine, make_session_factory, upgrade_database
from server.models import Gateway as GatewayRow
from server.models import GatewayEvent, Skill, UsageSession
from tests.faults.gateway_process import RELAY_LOG
from tests.faults.proxy import TcpProxy
from tests.services import ServiceUnavailable, free_port, start_mosquitto

ROOT = Path(__file__).resolve().parents[2]
SITE = "faults"
SKILL = "sewing"
MEMBERS = {"Amina Diallo": "04A1B2C3D4", "Lucas Martin": "04B2C3D4E5", "Léa Moreau": "04C3D4E5F6"}
"""Members certified on every machine of the fault tests, by badge."""
AMINA, LUCAS, LEA = MEMBERS.values()
WORKING_A = 2.0
"""What a machine draws while it works; its thresholds are 0.5 A (running) and 0.3 A (idle)."""
RUNNING_ABOVE_A = 0.5
IDLE_BELOW_A = 0.3


class FaultHarnessError(AssertionError):
    """Something the test waited for did not happen; the message says what and shows the state."""


def wait_until(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise FaultHarnessError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# The broker.


class Broker:
    """A Mosquitto that a test can kill -9 and start again on the same port.

    With ``persistence``, Mosquitto saves its state (retained messages, persistent
    sessions and their queued QoS 1 messages) after every change, so a kill -9 loses
    none of it; without, a restart starts empty. The product uses clean sessions, so
    no usage event waits in the broker for a client: billing must not depend on it.
    """

    def __init__(self, *, persistence: bool = False) -> None:
        self.persistence = persistence
        self.store = Path(tempfile.mkdtemp(prefix="atelier-faults-broker-store-"))
        # mosquitto drops privileges to its own user when started as root.
        with contextlib.suppress(KeyError, PermissionError):
            user = pwd.getpwnam("mosquitto")
            os.chown(self.store, user.pw_uid, user.pw_gid)
        self._mosquitto = start_mosquitto(self._persistence_config(persistence))
        config = self._mosquitto.directory / "mosquitto.conf"
        self._base_config = config.read_text().removesuffix(self._persistence_config(persistence))
        self.kills = 0

    def _persistence_config(self, persistence: bool) -> str:
        if not persistence:
            return ""
        return (
            "persistence true\n"
            f"persistence_location {self.store}/\n"
            "autosave_interval 1\n"
            "autosave_on_changes true\n"
        )

    def reconfigure(self, *, persistence: bool) -> None:
        """Make sure it runs, with persistence on or off: restarted (cleanly) if it must change."""
        if persistence != self.persistence:
            self._mosquitto.stop()
            shutil.rmtree(self.store, ignore_errors=True)
            self.store.mkdir()
            with contextlib.suppress(KeyError, PermissionError):
                user = pwd.getpwnam("mosquitto")
                os.chown(self.store, user.pw_uid, user.pw_gid)
            config = self._mosquitto.directory / "mosquitto.conf"
            config.write_text(self._base_config + self._persistence_config(persistence))
            self.persistence = persistence
        if not self.running:
            self.restart()

    @property
    def port(self) -> int:
        return self._mosquitto.port

    @property
    def url(self) -> str:
        return self._mosquitto.url

    @property
    def directory(self) -> Path:
        return self._mosquitto.directory

    @property
    def running(self) -> bool:
        return self._mosquitto.process.poll() is None

    def kill(self) -> None:
        """kill -9: no will is published, nothing is saved that was not saved already."""
        self._mosquitto.kill()
        self.kills += 1

    def restart(self) -> None:
        """Start again (after a kill) on the same port and configuration."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self._mosquitto.restart()
                return
            except ServiceUnavailable:
                # The port may linger for a moment after a kill.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self._mosquitto.stop()
        shutil.rmtree(self._mosquitto.directory, ignore_errors=True)
        shutil.rmtree(self.store, ignore_errors=True)


# The server.


def seed(
    database_url: str, gateways: dict[str, list[str]], *, site: str = SITE, upgrade: bool = True
) -> None:
    """The fault tests' workshop (members certified on every machine), and ``gateways``:
    gateway id -> its machine ids. Adds to what is there: the shared server gets more.
    ``upgrade=False``: the database is known to be at the latest schema already."""
    if upgrade:
        upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            if db.scalar(sa.select(Skill.id).where(Skill.slug == SKILL)) is None:
                workshop.add_skill(db, SKILL, "Industrial sewing")
                for name, badge in MEMBERS.items():
                    member = workshop.add_member(db, name, badge=badge)
                    workshop.grant_certification(db, member.id, SKILL)
            for gateway, machines in gateways.items():
                workshop.add_gateway(db, gateway, site=site)
                for machine in machines:
                    workshop.add_machine(
                        db, machine, machine, machine_class="sewing", gateway=gateway, required_skills=[SKILL]
                    )
            db.commit()
    finally:
        engine.dispose()


def _log_file(path: Path) -> IO[bytes]:
    return path.open("ab")


class ServerProcess:
    """``atelier server`` on ``database_url``, answering the gateways of ``site`` through ``mqtt_url``."""

    def __init__(
        self,
        database_url: str,
        mqtt_url: str,
        workdir: Path,
        *,
        site: str = SITE,
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: more ``ATELIER_*`` settings (a signing key...)."""
        self.extra_env = dict(env or {})
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.site = site
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        """Start the process; :meth:`wait_ready` waits until it answers gateways."""
        env = {
            **os.environ,
            "ATELIER_DATABASE_URL": self.database_url,
            "ATELIER_MQTT_URL": self.mqtt_url,
            "ATELIER_SITE": self.site,
            "ATELIER_HTTP_HOST": "127.0.0.1",
            "ATELIER_HTTP_PORT": str(self.http_port),
            "ATELIER_LOG_LEVEL": "INFO",
            "ATELIER_EXPIRY_SWEEP_INTERVAL_S": "86400",
            **self.extra_env,
        }
        env.pop("ATELIER_TELEMETRY_URL", None)
        with _log_file(self.log_path) as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "server"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """Both MQTT lanes subscribed: an event published now is applied."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as answer:
                return bool(json.loads(answer.read()).get("mqtt") == "connected")
        except (OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.running:
                raise ServiceUnavailable(f"the server exited before it was ready:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"the server was not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """kill -9, wherever it is: mid-commit, between a commit and its ack..."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def restart(self, wait: bool = True) -> None:
        self.kill()
        self.start()
        if wait:
            self.wait_ready()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# Gateways.


@dataclass(frozen=True)
class MachinePlan:
    id: str
    idle_timeout_s: float = 60.0


def gateway_toml(
    gateway_id: str,
    mqtt_url: str,
    state_dir: Path,
    machines: Iterable[str | MachinePlan],
    *,
    site: str = SITE,
    sample_interval_ms: int = 20,
    request_timeout_ms: int = 3000,
    checkpoint_interval_s: float | None = 0.2,
    running_after_s: float = 0.1,
    idle_after_s: float = 0.2,
) -> str:
    """A gateway's TOML: simulated readers and clamps, relays and lights on mock pins,
    short hysteresis so that a session is a second or two."""
    lines = [
        "[gateway]",
        f'id = "{gateway_id}"',
        f'site = "{site}"',
        f'mqtt_url = "{mqtt_url}"',
        f"state_dir = {json.dumps(str(state_dir))}",
        f"request_timeout_ms = {request_timeout_ms}",
        f"sample_interval_ms = {sample_interval_ms}",
        "telemetry_interval_s = 3600",
        'pin_factory = "mock"',
    ]
    if checkpoint_interval_s is not None:
        lines.append(f"checkpoint_interval_s = {checkpoint_interval_s}")
    pin = 2
    for plan in machines:
        machine = plan if isinstance(plan, MachinePlan) else MachinePlan(plan)
        lines += [
            "",
            "[[machine]]",
            f'id = "{machine.id}"',
            f'name = "Machine {machine.id}"',
            f"idle_timeout_s = {machine.idle_timeout_s}",
            "[machine.reader]",
            'type = "simulated"',
            "[machine.current]",
            'type = "simulated"',
            f"running_above_a = {RUNNING_ABOVE_A}",
            f"idle_below_a = {IDLE_BELOW_A}",
            f"running_after_s = {running_after_s}",
            f"idle_after_s = {idle_after_s}",
            "[machine.switch]",
            'type = "gpio"',
            f"pin = {pin}",
            "active_high = false",
            "[machine.indicator]",
            'type = "gpio"',
            f"green_pin = {pin + 1}",
            f"red_pin = {pin + 2}",
        ]
        pin += 3
    return "\n".join(lines) + "\n"


@dataclass
class Held:
    """When the test made a machine draw current, as the test saw it (epoch seconds)."""

    since: float | None = None
    total_s: float = 0.0

    def set(self, amps: float, at: float) -> None:
        if amps > RUNNING_ABOVE_A and self.since is None:
            self.since = at
        elif amps < IDLE_BELOW_A and self.since is not None:
            self.total_s += at - self.since
            self.since = None


class GatewayProcess:
    """A gateway daemon in its own process; kill it and start it again on the same state."""

    def __init__(
        self,
        gateway_id: str,
        mqtt_url: str,
        workdir: Path,
        machines: Iterable[str | MachinePlan],
        *,
        keepalive: int | None = None,
        reconnect_max: int | None = 1,
        backlog_check_s: float | None = None,
        config_text: str | None = None,
        **config: Any,
    ) -> None:
        """``config_text``: the TOML to run (its ``state_dir`` must be ``workdir/state``);
        else one is made by :func:`gateway_toml` with ``config``."""
        self.id = gateway_id
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.machines = [m.id if isinstance(m, MachinePlan) else m for m in machines]
        self.config_path = workdir / "gateway.toml"
        self.config_path.write_text(
            config_text or gateway_toml(gateway_id, mqtt_url, self.state_dir, machines, **config)
        )
        self.keepalive = keepalive
        self.reconnect_max = reconnect_max
        self.backlog_check_s = backlog_check_s
        self.log_path = workdir / "gateway.log"
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._commands = 0
        self.held = {machine: Held() for machine in self.machines}
        self.kills = 0
        self.boots = 0
        self.last: dict[str, Any] = {}

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.sqlite3"

    def start(self, timeout: float = 20) -> dict[str, Any]:
        """Start the process (again, after a kill) and wait until the gateway runs."""
        argv = [sys.executable, "-m", "tests.faults.gateway_process", str(self.config_path)]
        if self.keepalive is not None:
            argv += ["--keepalive", str(self.keepalive)]
        if self.reconnect_max is not None:
            argv += ["--reconnect-max", str(self.reconnect_max)]
        if self.backlog_check_s is not None:
            argv += ["--backlog-check", str(self.backlog_check_s)]
        with self._lock:
            if self.running:
                raise FaultHarnessError(f"gateway {self.id} is running already")
            with _log_file(self.log_path) as log:
                self.process = subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    bufsize=1,
                )
            self._lines = queue.SimpleQueue()
            threading.Thread(target=self._read, args=(self.process, self._lines), daemon=True).start()
            ready = self._reply(timeout)
            if not ready.get("ready"):
                raise FaultHarnessError(f"gateway {self.id} did not start: {ready}\n{self.log_tail()}")
            self.boots += 1
            return ready

    @staticmethod
    def _read(process: subprocess.Popen[str], lines: queue.SimpleQueue[str | None]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    def _reply(self, timeout: float, tag: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise FaultHarnessError(
                    f"gateway {self.id} did not answer in {timeout} s\n{self.log_tail()}"
                ) from None
            if line is None:
                raise FaultHarnessError(f"gateway {self.id} exited\n{self.log_tail()}")
            answer: dict[str, Any] = json.loads(line)
            if answer.get("id") == tag:  # else the late answer to a command given up on
                break
        if answer.get("machines") is not None:
            self.last = answer
        return answer

    def command(self, line: str, timeout: float = 10) -> dict[str, Any]:
        with self._lock:
            if self.process is None or self.process.stdin is None or self.process.poll() is not None:
                raise FaultHarnessError(f"gateway {self.id} is not running\n{self.log_tail()}")
            self._commands += 1
            tag = str(self._commands)
            try:
                self.process.stdin.write(f"@{tag} {line}\n")
                self.process.stdin.flush()
            except (OSError, ValueError) as error:  # killed meanwhile: a broken pipe
                raise FaultHarnessError(f"gateway {self.id} is not running: {error}") from None
            answer = self._reply(timeout, tag)
        if not answer.get("ok"):
            raise FaultHarnessError(f"gateway {self.id}: {line!r} failed: {answer.get('error')}")
        return answer

    def state(self) -> dict[str, Any]:
        return self.command("state")

    def machine(self, machine: str) -> dict[str, Any]:
        found: dict[str, Any] = self.state()["machines"][machine]
        return found

    def tap(self, machine: str, badge: str) -> None:
        self.command(f"tap {machine} {badge}")

    def amps(self, machine: str, amps: float) -> None:
        at = time.time()
        self.command(f"amps {machine} {amps}")
        self.held[machine].set(amps, at)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no clean stop, no offline status; the journal is as the last commit left it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1
        now = time.time()
        for held in self.held.values():
            held.set(0.0, now)  # the relay's power went with the process

    def stop(self, timeout: float = 30) -> None:
        """A clean stop: open sessions are closed, the last acks awaited."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(FaultHarnessError):
            self.command("stop", timeout=timeout)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # Waiting for the machine.

    def wait_machine(
        self, machine: str, timeout: float = 10, *, interval: float = 0.02, **expected: Any
    ) -> dict[str, Any]:
        """Wait until the machine's state has every ``expected`` value (state, relay, session...)."""
        seen: dict[str, Any] = {}

        def matches() -> bool:
            nonlocal seen
            seen = self.machine(machine)
            return all(seen.get(key) == value for key, value in expected.items())

        try:
            wait_until(f"{self.id}/{machine} to be {expected}", matches, timeout, interval)
        except FaultHarnessError as error:
            raise FaultHarnessError(f"{error}; last seen {seen}\n{self.log_tail()}") from None
        return seen

    def wait_connected(self, timeout: float = 15) -> None:
        try:
            wait_until(f"{self.id} to connect", lambda: bool(self.state()["connected"]), timeout)
        except FaultHarnessError as error:
            raise FaultHarnessError(f"{error}\n{self.log_tail()}") from None

    def wait_drained(self, timeout: float) -> None:
        """Wait until the server has acknowledged every journaled event."""
        try:
            wait_until(
                f"{self.id}'s journal backlog to drain", lambda: self.state()["backlog"] == 0, timeout, 0.05
            )
        except FaultHarnessError as error:
            raise FaultHarnessError(f"{error}: {self.last.get('backlog')} events unacknowledged") from None

    def grant(self, machine: str, badge: str, timeout: float = 10) -> str:
        """Tap a certified badge on a locked machine and wait for the power; returns the session id."""
        self.tap(machine, badge)
        state = self.wait_machine(machine, timeout, state="unlocked", relay=True)
        session: str = state["session"]
        return session

    def run_for(self, machine: str, seconds: float) -> None:
        """The machine works for ``seconds`` (current above the threshold), then stops."""
        self.amps(machine, WORKING_A)
        self.wait_machine(machine, state="running", relay=True)
        time.sleep(max(0.0, seconds - 0.1))
        self.amps(machine, 0.0)
        self.wait_machine(machine, state="unlocked", relay=True)

    def badge_out(self, machine: str, badge: str) -> None:
        self.tap(machine, badge)
        self.wait_machine(machine, state="locked", relay=False, session=None)

    def journal_offline(self, proxy: TcpProxy, badges: Sequence[str], at_least: int = 60) -> int:
        """A backlog to replay: each machine granted to its badge, the network cut, running
        stretches on every machine until ``at_least`` events wait, then every member badges
        out. Returns the backlog."""
        for machine, badge in zip(self.machines, badges, strict=True):
            self.grant(machine, badge)
        proxy.cut("drop")
        wait_until("the gateway to see the cut", lambda: not self.state()["connected"], 10)
        while self.state()["backlog"] < at_least:
            for machine in self.machines:
                self.amps(machine, WORKING_A)
            time.sleep(0.1)
            for machine in self.machines:
                self.amps(machine, 0.0)
            time.sleep(0.12)
        for machine, badge in zip(self.machines, badges, strict=True):
            self.badge_out(machine, badge)
        backlog: int = self.state()["backlog"]
        return backlog


# The books: what the gateway sensed against what the server billed.


@dataclass(frozen=True)
class Totals:
    unlocked_ms: int
    running_ms: int
    idle_ms: int
    ended: bool
    end_reason: str | None

    @property
    def durations(self) -> tuple[int, int, int]:
        return (self.unlocked_ms, self.running_ms, self.idle_ms)


def journal_events(path: Path) -> list[tuple[UsageEvent, bool]]:
    """Every event in a gateway's journal, oldest first, with whether it was acknowledged.

    The fault runner never compacts the journal, so this is everything the gateway recorded.
    """
    if not path.exists():
        return []
    connection = sqlite3.connect(path, timeout=10)
    try:
        rows = connection.execute("SELECT seq, payload, acked FROM events ORDER BY seq").fetchall()
    finally:
        connection.close()
    return [(decode(UsageEvent, payload), bool(acked)) for _, payload, acked in rows]


@dataclass
class Sensed:
    """A gateway's sessions as it journaled them, and anything wrong in the journal itself."""

    sessions: dict[str, Totals] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)
    unacked: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    starts: dict[str, int] = field(default_factory=dict)
    """Per session, the at_ms of its session_started event."""


def sensed(path: Path) -> Sensed:
    result = Sensed()
    last: dict[str, UsageEvent] = {}
    endings: dict[str, int] = {}
    for event, acked in journal_events(path):
        result.seqs.append(event.seq)
        if not acked:
            result.unacked.append(event.seq)
        previous = last.get(event.session_id)
        if previous is not None:
            before = (previous.unlocked_ms, previous.running_ms, previous.idle_ms)
            after = (event.unlocked_ms, event.running_ms, event.idle_ms)
            if any(b > a for b, a in zip(before, after, strict=True)):
                result.problems.append(
                    f"session {event.session_id}: totals went down from seq {previous.seq} {before} "
                    f"to seq {event.seq} {after}"
                )
            if previous.kind is EventKind.SESSION_ENDED:
                result.problems.append(
                    f"session {event.session_id}: seq {event.seq} ({event.kind.value}) after its end"
                )
        if event.kind is EventKind.SESSION_STARTED:
            result.starts[event.session_id] = event.at_ms
        if event.kind is EventKind.SESSION_ENDED:
            endings[event.session_id] = endings.get(event.session_id, 0) + 1
        last[event.session_id] = event
    for session_id, event in last.items():
        result.sessions[session_id] = Totals(
            event.unlocked_ms,
            event.running_ms,
            event.idle_ms,
            event.kind is EventKind.SESSION_ENDED,
            event.end_reason,
        )
        if endings.get(session_id, 0) > 1:
            result.problems.append(f"session {session_id} ended {endings[session_id]} times")
    return result


@dataclass
class Billed:
    sessions: dict[str, Totals]
    seqs: list[int]


def billed(database_url: str, gateway: str) -> Billed:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            gateway_id = connection.scalar(sa.select(GatewayRow.id).where(GatewayRow.slug == gateway))
            rows = connection.execute(
                sa.select(
                    UsageSession.session_id,
                    UsageSession.unlocked_ms,
                    UsageSession.running_ms,
                    UsageSession.idle_ms,
                    UsageSession.ended_at,
                    UsageSession.end_reason,
                ).where(UsageSession.gateway_id == gateway_id)
            ).all()
            seqs = connection.scalars(
                sa.select(GatewayEvent.seq)
                .where(GatewayEvent.gateway_id == gateway_id)
                .order_by(GatewayEvent.seq)
            ).all()
    finally:
        engine.dispose()
    return Billed(
        {
            row.session_id: Totals(
                row.unlocked_ms, row.running_ms, row.idle_ms, row.ended_at is not None, row.end_reason
            )
            for row in rows
        },
        list(seqs),
    )


@dataclass
class Books:
    """One gateway's sensed sessions against the server's, session by session."""

    gateway: str
    sensed: Sensed
    billed: Billed

    @property
    def missing(self) -> list[str]:
        """Sessions the gateway sensed that the server has not billed."""
        return sorted(set(self.sensed.sessions) - set(self.billed.sessions))

    @property
    def extra(self) -> list[str]:
        """Sessions the server billed that the gateway never sensed."""
        return sorted(set(self.billed.sessions) - set(self.sensed.sessions))

    @property
    def differing(self) -> dict[str, tuple[Totals, Totals]]:
        return {
            session_id: (totals, self.billed.sessions[session_id])
            for session_id, totals in self.sensed.sessions.items()
            if session_id in self.billed.sessions and self.billed.sessions[session_id] != totals
        }

    @property
    def duplicate_seqs(self) -> list[int]:
        seen: set[int] = set()
        return [seq for seq in self.billed.seqs if seq in seen or seen.add(seq)]  # type: ignore[func-returns-value]

    def minutes(self, kind: str = "running_ms") -> tuple[int, int, int, int]:
        """Milliseconds sensed, billed, lost (sensed but not billed) and billed twice (billed beyond
        what was sensed, or never sensed) of ``kind`` (running_ms, unlocked_ms or idle_ms)."""
        sensed_ms = sum(getattr(t, kind) for t in self.sensed.sessions.values())
        billed_ms = sum(getattr(t, kind) for t in self.billed.sessions.values())
        lost = twice = 0
        for session_id, totals in self.sensed.sessions.items():
            on_server = self.billed.sessions.get(session_id)
            got = 0 if on_server is None else getattr(on_server, kind)
            lost += max(0, getattr(totals, kind) - got)
            twice += max(0, got - getattr(totals, kind))
        twice += sum(getattr(self.billed.sessions[s], kind) for s in self.extra)
        return sensed_ms, billed_ms, lost, twice

    @property
    def balanced(self) -> bool:
        return not (
            self.missing or self.extra or self.differing or self.sensed.problems or self.duplicate_seqs
        )

    def describe(self) -> str:
        lines = [
            f"gateway {self.gateway}: {len(self.sensed.sessions)} sessions sensed, "
            f"{len(self.billed.sessions)} billed; {len(self.sensed.seqs)} events journaled "
            f"({len(self.sensed.unacked)} unacknowledged: {self.sensed.unacked[:20]}), "
            f"{len(self.billed.seqs)} applied"
        ]
        lines += [f"  journal: {problem}" for problem in self.sensed.problems]
        lines += [f"  sensed, not billed: {s} {self.sensed.sessions[s]}" for s in self.missing]
        lines += [f"  billed, never sensed: {s} {self.billed.sessions[s]}" for s in self.extra]
        lines += [
            f"  {s}: sensed {sensed_totals}, billed {billed_totals}"
            for s, (sensed_totals, billed_totals) in self.differing.items()
        ]
        if self.duplicate_seqs:
            lines.append(f"  seqs applied twice: {self.duplicate_seqs}")
        not_applied = sorted(set(self.sensed.seqs) - set(self.billed.seqs))
        if not_applied:
            lines.append(f"  journaled seqs never applied: {not_applied[:30]}")
        for kind in ("running_ms", "unlocked_ms"):
            sensed_ms, billed_ms, lost, twice = self.minutes(kind)
            lines.append(
                f"  {kind}: sensed {sensed_ms}, billed {billed_ms}, lost {lost}, billed twice {twice}"
            )
        return "\n".join(lines)


def books(journal: Path, database_url: str, gateway: str) -> Books:
    return Books(gateway, sensed(journal), billed(database_url, gateway))


def assert_billed_exactly_once(
    gateway: GatewayProcess, database_url: str, *, timeout: float = 20, sessions: int | None = None
) -> Books:
    """Wait until the gateway's journal is drained and every session it sensed is billed once
    with the same totals (and nothing else is); fail with the books otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        drained = not gateway.running or gateway.state()["backlog"] == 0
        result = books(gateway.journal_path, database_url, gateway.id)
        if drained and result.balanced and not result.sensed.unacked:
            break
        if time.monotonic() > deadline:
            raise FaultHarnessError(
                f"after {timeout} s the books of {gateway.id} do not balance:\n{result.describe()}"
            )
        time.sleep(0.1)
    assert not result.sensed.problems, result.describe()
    assert all(t.ended for t in result.sensed.sessions.values()), result.describe()
    if sessions is not None:
        assert len(result.sensed.sessions) == sessions, result.describe()
    return result


# Relays.


def relay_log(gateway: GatewayProcess) -> list[dict[str, Any]]:
    path = gateway.state_dir / RELAY_LOG
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line cut by a kill -9
            entries.append(json.loads(line))
    return entries


def unsafe_relay_changes(entries: list[dict[str, Any]], *, grace_s: float = 0.5) -> list[str]:
    """Every relay change the gateway must not have made:

    * a relay found on when a gateway (re)started;
    * a relay switched on without a session granted in this run of the gateway (a restarted
      gateway powering a machine for a session of its previous life);
    * a relay switched off while the machine had been drawing working current for longer
      than ``grace_s`` (time enough for the gateway to see it): power cut mid-seam.
    """
    problems = []
    sessions_of_boot: dict[str, int] = {}
    for entry in entries:
        where = f"{entry['machine']} (boot {entry['boot']}, pid {entry['pid']}, t={entry['t']:.3f})"
        session = entry.get("session")
        if entry["op"] == "boot":
            if entry["relay"]:
                problems.append(f"{where}: relay on when the gateway started")
            continue
        if entry["op"] == "on":
            if session is None or entry["state"] not in ("unlocked", "running"):
                problems.append(f"{where}: relay on in state {entry['state']} without a session")
            elif sessions_of_boot.setdefault(session, entry["boot"]) != entry["boot"]:
                problems.append(
                    f"{where}: relay on for session {session} of boot {sessions_of_boot[session]}"
                )
        elif (
            entry["op"] == "off"
            and entry["amps"] > entry["running_above_a"]
            and entry["t"] - entry["amps_since"] > grace_s
        ):
            problems.append(
                f"{where}: relay off while drawing {entry['amps']} A for "
                f"{entry['t'] - entry['amps_since']:.2f} s (state {entry['state']}, session {session})"
            )
        if not entry["relay"] and entry["op"] == "on":
            problems.append(f"{where}: told to switch on, the pin says off")
        if entry["relay"] and entry["op"] == "off":
            problems.append(f"{where}: told to switch off, the pin says on")
    return problems


def assert_relays_safe(*gateways: GatewayProcess, grace_s: float = 0.5) -> None:
    problems = [p for gateway in gateways for p in unsafe_relay_changes(relay_log(gateway), grace_s=grace_s)]
    assert not problems, "unsafe relay changes:\n" + "\n".join(problems)


def relay_changes(gateway: GatewayProcess, machine: str, since: float = 0.0) -> list[str]:
    """The machine's relay operations (on, off, boot) after ``since`` (epoch seconds)."""
    return [e["op"] for e in relay_log(gateway) if e["machine"] == machine and e["t"] >= since]


# MQTT from the test's side.


class AckSpy:
    """Counts the acks the server publishes to a gateway; ``on_ack`` runs on the first one
    (in paho's thread, at once: to kill something at a precise moment)."""

    def __init__(
        self, broker_url: str, gateway: str, *, site: str = SITE, on_first: Callable[[], None] | None = None
    ) -> None:
        self.acks: list[EventAck] = []
        self._on_first = on_first
        self._lock = threading.Condition()
        url = BrokerURL.parse(broker_url)
        self.client = make_client(url, f"spy-{gateway}-{os.getpid()}-{time.monotonic_ns()}")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(url.host, url.port)
        self.client.loop_start()
        result, _ = self.client.subscribe(topic(site, gateway, Channel.EVENTS_ACK), qos=1)
        if result != paho.MQTT_ERR_SUCCESS or not subscribed.wait(5):
            self.close()
            raise FaultHarnessError(f"the ack spy could not subscribe: {paho.error_string(result)}")

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        ack = decode(EventAck, message.payload)
        with self._lock:
            self.acks.append(ack)
            first = len(self.acks) == 1
            self._lock.notify_all()
        if first and self._on_first is not None:
            self._on_first()

    def wait(self, count: int, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: len(self.acks) >= count, timeout)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.acks)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_raw(broker_url: str, gateway: str, payloads: Iterable[bytes], *, site: str = SITE) -> int:
    """Publish usage events as they are, QoS 1, straight to the broker on ``gateway``'s events topic."""
    url = BrokerURL.parse(broker_url)
    client = make_client(url, f"replayer-{gateway}-{os.getpid()}-{time.monotonic_ns()}")
    client.connect(url.host, url.port)
    client.loop_start()
    sent = 0
    try:
        for payload in payloads:
            client.publish(topic(site, gateway, Channel.EVENTS), payload, qos=1).wait_for_publish(5)
            sent += 1
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


def retained(broker_url: str, name: str, wait_s: float = 0.5) -> list[bytes]:
    """The retained messages a new subscriber to ``name`` gets."""
    url = BrokerURL.parse(broker_url)
    got: list[bytes] = []
    client = make_client(url, f"retained-{os.getpid()}-{time.monotonic_ns()}")
    client.on_message = lambda c, u, message: got.append(bytes(message.payload)) if message.retain else None
    client.connect(url.host, url.port)
    client.loop_start()
    try:
        client.subscribe(name, qos=1)
        time.sleep(wait_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return got

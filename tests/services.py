"""Real services for tests and benchmarks: Mosquitto, PostgreSQL and victoria-metrics.

Each is spawned on a free loopback port in a temporary directory and stopped
afterwards. When a service cannot be started, :class:`ServiceUnavailable` is
raised: tests that need it fail, they never skip (``make test`` installs the
Debian packages when run as root).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ServiceUnavailable(RuntimeError):
    """A service a test needs could not be started; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"process exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServiceUnavailable(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def _find(name: str, *globs: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    for pattern in globs:
        matches = sorted(glob.glob(pattern))
        if matches:
            return matches[-1]
    if found:
        return found
    raise ServiceUnavailable(
        f"{name} is not installed: run `make test` as root to install it with apt-get, "
        f"or install the Debian package that provides it"
    )


@dataclass
class Mosquitto:
    """A Mosquitto broker of our own, configured as the project ships it."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Kill -9: for fault-injection tests."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.process = _spawn_mosquitto(self.directory)
        wait_for_port(self.port, proc=self.process)


def _spawn_mosquitto(directory: Path) -> subprocess.Popen[bytes]:
    log = open(directory / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(
        [_find("mosquitto"), "-c", str(directory / "mosquitto.conf")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def start_mosquitto(extra_config: str = "") -> Mosquitto:
    directory = Path(tempfile.mkdtemp(prefix="atelier-mosquitto-"))
    port = free_port()
    (directory / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "set_tcp_nodelay true\n"
        "max_queued_messages 100000\n"
        "persistence false\n"
        f"{extra_config}"
    )
    # mosquitto drops privileges to the 'mosquitto' user when started as root.
    with contextlib.suppress(KeyError, PermissionError):
        user = pwd.getpwnam("mosquitto")
        os.chown(directory, user.pw_uid, user.pw_gid)
    process = _spawn_mosquitto(directory)
    try:
        wait_for_port(port, proc=process)
    except ServiceUnavailable as error:
        log = (directory / "mosquitto.log").read_text(errors="replace")
        raise ServiceUnavailable(f"mosquitto did not start: {error}\n{log}") from None
    return Mosquitto(port, directory, process)


@contextlib.contextmanager
def mosquitto(extra_config: str = "") -> Iterator[Mosquitto]:
    broker = start_mosquitto(extra_config)
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.directory, ignore_errors=True)


@dataclass
class Postgres:
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://atelier@127.0.0.1:{self.port}/atelier"


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str], cwd: Path, check: bool = True) -> None:
    subprocess.run(_as_postgres(argv), check=check, capture_output=True, cwd=cwd)


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster with a database ``atelier``, trust auth on loopback."""
    bindir = "/usr/lib/postgresql/*/bin"
    initdb = _find("initdb", f"{bindir}/initdb")
    pg_ctl = _find("pg_ctl", f"{bindir}/pg_ctl")
    createdb = str(Path(initdb).parent / "createdb")
    directory = Path(tempfile.mkdtemp(prefix="atelier-postgres-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
    data = str(directory / "data")
    port = free_port()
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    try:
        _run([initdb, "-D", data, "-U", "atelier", "-A", "trust", "-E", "UTF8", "--no-sync"], directory)
        _run(
            [pg_ctl, "-D", data, "-o", options, "-l", str(directory / "postgres.log"), "-w", "start"],
            directory,
        )
    except subprocess.CalledProcessError as error:
        shutil.rmtree(directory, ignore_errors=True)
        raise ServiceUnavailable(
            f"PostgreSQL did not start: {error.stderr.decode(errors='replace')}"
        ) from None
    try:
        _run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "atelier", "atelier"], directory)
        yield Postgres(port, directory)
    finally:
        _run([pg_ctl, "-D", data, "-m", "immediate", "stop"], directory, check=False)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class VictoriaMetrics:
    """A victoria-metrics of our own: it takes influxdb-client writes at ``/api/v2/write``."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def export(self, match: str) -> list[dict[str, Any]]:
        """The raw samples of every series matching ``match``, through ``/api/v1/export``.

        Unlike an instant query, the export shows points however recent they are (not
        later than now, though); pending points are flushed first, or they would take
        seconds to show.
        """
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):  # noqa: S310 - loopback
            pass
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as response:  # noqa: S310 - our own loopback URL
            return [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _wait_for_health(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"process exited with code {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=1) as answer:  # noqa: S310 - loopback
            if answer.status == 200:
                return
        time.sleep(0.05)
    raise ServiceUnavailable(f"{url}/health did not answer within {timeout} s")


@contextlib.contextmanager
def victoria_metrics() -> Iterator[VictoriaMetrics]:
    """A throw-away victoria-metrics (Debian package ``victoria-metrics``) on a free port."""
    binary = _find("victoria-metrics")
    directory = Path(tempfile.mkdtemp(prefix="atelier-victoria-metrics-"))
    port = free_port()
    log = open(directory / "victoria-metrics.log", "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(
        [
            binary,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={directory / 'data'}",
            # Instant queries hide points younger than 30 s by default; tests write "now".
            "-search.latencyOffset=0s",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    running = VictoriaMetrics(port, directory, process)
    try:
        try:
            _wait_for_health(running.url, 15.0, process)
        except ServiceUnavailable as error:
            output = (directory / "victoria-metrics.log").read_text(errors="replace")[-3000:]
            raise ServiceUnavailable(f"victoria-metrics did not start: {error}\n{output}") from None
        yield running
    finally:
        running.stop()
        shutil.rmtree(directory, ignore_errors=True)

"""The processes of ``bench/load.py``: N servers (or echo responders) sharing the subscriptions,
and the CPU each process spends under load."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.load_database import SITE
from tests.services import Postgres, free_port

ROOT = Path(__file__).resolve().parent.parent
GROUP = "servers"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The floor (--floor): what one Python process with paho can answer through the same broker,
# decoding and encoding with the contract's models, with no database and no rules.
_ECHO = """
import sys
from protocol.messages import AccessReply, AccessRequest, EventAck, Reason, UsageEvent, decode, encode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, parse_topic, shared, subscription, topic
url, site, group = BrokerURL.parse(sys.argv[1]), sys.argv[2], sys.argv[3]
client = make_client(url, "echo-" + sys.argv[4])
def answer(client, userdata, message):
    address = parse_topic(message.topic)
    if address.channel is Channel.ACCESS_REQUEST:
        request = decode(AccessRequest, message.payload)
        reply = AccessReply(request_id=request.request_id, machine=request.machine, badge=request.badge,
                            granted=True, reason=Reason.GRANTED)
        client.publish(topic(site, address.gateway, Channel.ACCESS_REPLY), encode(reply), qos=1)
    else:
        event = decode(UsageEvent, message.payload)
        client.publish(topic(site, address.gateway, Channel.EVENTS_ACK), encode(EventAck(seq=event.seq)), qos=1)
client.on_message = answer
client.on_connect = lambda c, u, f, rc, p: c.subscribe(
    [(shared(group, subscription(channel, site)), 1) for channel in (Channel.ACCESS_REQUEST, Channel.EVENTS)]
)
client.connect(url.host, url.port)
client.loop_forever()
"""


# --- the servers -------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    echo: bool = False

    def scrape(self) -> dict[str, float]:
        """The counters of its /metrics that the bench reads (an echo responder has none)."""
        if self.echo:
            return {"atelier_decisions_total": float("nan"), "atelier_events_ingested_total": float("nan")}
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
            text = response.read().decode()
        totals = {"atelier_decisions_total": 0.0, "atelier_events_ingested_total": 0.0}
        for line in text.splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in totals:
                totals[name] += float(line.rsplit(" ", 1)[1])
        return totals


@contextlib.contextmanager
def servers(
    count: int, database_url: str, mqtt_url: str, directory: Path, *, floor: bool = False
) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for number in range(count):
            port = free_port()
            env = {
                **os.environ,
                "ATELIER_DATABASE_URL": database_url,
                "ATELIER_MQTT_URL": mqtt_url,
                "ATELIER_SITE": SITE,
                "ATELIER_MQTT_SHARED_GROUP": GROUP,
                "ATELIER_HTTP_PORT": str(port),
                "ATELIER_LOG_LEVEL": "WARNING",
                "ATELIER_EXPIRY_SWEEP_INTERVAL_S": "86400",
            }
            log = directory / f"server-{count}-{number}.log"
            with open(log, "wb") as output:
                argv = [sys.executable, "-m", "cli.main", "--log-level", "WARNING", "server"]
                if floor:
                    argv = [sys.executable, "-c", _ECHO, mqtt_url, SITE, GROUP, str(number)]
                process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
            started.append(Server(process, port, log, echo=floor))
        for server in started:
            if floor:
                time.sleep(1.0)  # connected and subscribed well within a second on loopback
            else:
                wait_until_connected(server)
        yield started
    finally:
        for server in started:
            server.process.terminate()
        for server in started:
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


def wait_until_connected(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=1) as response,
        ):
            if b'"connected"' in response.read():
                return
        time.sleep(0.2)
    tail = server.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"server on port {server.port} did not come up:\n{tail}")


# --- what each process spends ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def postgres_pids(database: Postgres) -> list[int]:
    postmaster = int((database.directory / "data" / "postmaster.pid").read_text().split()[0])
    return [postmaster, *children_of(postmaster)]


def cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    return {name: {pid: cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}


def cores_used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], seconds: float
) -> dict[str, float]:
    used = {}
    for name, pids in after.items():
        used[name] = sum(value - before[name].get(pid, 0.0) for pid, value in pids.items()) / seconds
    return used

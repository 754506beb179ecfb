"""Tap → decision round trip through a real Mosquitto on loopback.

Two measurements, each with the real server process (``atelier server`` on
SQLite) answering through a real Mosquitto:

* ``decision``: a gateway-side MQTT client publishes an AccessRequest and
  waits for the AccessReply (the server side of the round trip);
* ``tap → relay``: the real gateway daemon on a simulated reader; from the
  tap to the moment the relay is told to close (gpiozero mock pin).

Each is run as the product ships (TCP_NODELAY on every client and
``set_tcp_nodelay true`` on the broker) and, for comparison in the same run,
the naive way (Nagle's algorithm left on everywhere), which shows where the
44-88 ms of a naive paho + Mosquitto set-up come from.

    .venv/bin/python bench/decision_latency.py [--requests 2000] [--naive-requests 200]
    .venv/bin/python bench/decision_latency.py --postgresql     # the server on PostgreSQL
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relay_timer import RelayTimer  # noqa: E402
from controller.clock import SystemClock  # noqa: E402
from controller.config import parse_config  # noqa: E402
from controller.gateway import Gateway  # noqa: E402
from protocol.messages import AccessReply, AccessRequest, MachineStateName, decode, encode  # noqa: E402
from protocol.mqtt import BrokerURL, make_client  # noqa: E402
from protocol.topics import Channel, topic  # noqa: E402
from server import workshop  # noqa: E402
from server.db import make_engine, make_session_factory, upgrade_database  # noqa: E402
from tests.services import free_port, mosquitto, postgres  # noqa: E402

SITE = "bench"
GATEWAY = "gw-bench"
BADGE = "04A1B2C3D4"

# The floor: a responder that answers every request at once, with no database and no
# rules, through the same broker and client manners as the product.
_ECHO_SERVER = """
import sys
from protocol.messages import AccessReply, AccessRequest, Reason, decode, encode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, topic
url = BrokerURL.parse(sys.argv[1])
client = make_client(url, "bench-echo")
reply_topic = topic(sys.argv[2], sys.argv[3], Channel.ACCESS_REPLY)
def answer(client, userdata, message):
    request = decode(AccessRequest, message.payload)
    reply = AccessReply(request_id=request.request_id, machine=request.machine, badge=request.badge,
                        granted=True, reason=Reason.GRANTED)
    client.publish(reply_topic, encode(reply), qos=1)
client.on_message = answer
client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic(sys.argv[2], sys.argv[3], Channel.ACCESS_REQUEST), qos=1)
client.connect(url.host, url.port)
client.loop_forever()
"""

# A server whose clients keep Nagle's algorithm: the naive set-up, for comparison only.
_NAIVE_SERVER = (
    "import protocol.mqtt as m; m._no_delay = lambda *a: None; "
    "from cli.main import main; raise SystemExit(main(['--log-level', 'WARNING', 'server']))"
)


def seed(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as db:
        workshop.add_skill(db, "industrial-sewing", "Industrial sewing")
        workshop.add_gateway(db, GATEWAY, site=SITE)
        for machine in ("sew-1", "sew-2"):
            workshop.add_machine(
                db,
                machine,
                machine,
                machine_class="sewing",
                gateway=GATEWAY,
                required_skills=["industrial-sewing"],
            )
        member = workshop.add_member(db, "Bench Member", badge=BADGE)
        workshop.grant_certification(db, member.id, "industrial-sewing")
        db.commit()
    engine.dispose()


@contextlib.contextmanager
def server_process(database_url: str, mqtt_url: str, naive: bool) -> Iterator[None]:
    port = free_port()
    env = {
        **os.environ,
        "ATELIER_DATABASE_URL": database_url,
        "ATELIER_MQTT_URL": mqtt_url,
        "ATELIER_SITE": SITE,
        "ATELIER_HTTP_PORT": str(port),
        "ATELIER_LOG_LEVEL": "WARNING",
    }
    argv = (
        [sys.executable, "-c", _NAIVE_SERVER]
        if naive
        else [sys.executable, "-m", "cli.main", "--log-level", "WARNING", "server"]
    )
    process = subprocess.Popen(argv, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response,
            ):
                if b'"connected"' in response.read():
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not come up")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def echo_process(mqtt_url: str) -> Iterator[None]:
    process = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER, mqtt_url, SITE, GATEWAY], cwd=ROOT)
    try:
        time.sleep(1.0)  # connected and subscribed well within a second on loopback
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def decision_round_trips(mqtt_url: str, count: int, naive: bool) -> list[float]:
    """Milliseconds from publishing an AccessRequest to receiving its AccessReply."""
    url = BrokerURL.parse(mqtt_url)
    client = make_client(url, f"{GATEWAY}-client", tcp_nodelay=not naive)
    replies: dict[str, float] = {}
    arrived = threading.Condition()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        reply = decode(AccessReply, message.payload)
        with arrived:
            replies[reply.request_id] = time.perf_counter()
            arrived.notify_all()

    client.on_message = on_message
    client.connect(url.host, url.port)
    client.loop_start()
    client.subscribe(topic(SITE, GATEWAY, Channel.ACCESS_REPLY), qos=1)
    request_topic = topic(SITE, GATEWAY, Channel.ACCESS_REQUEST)
    samples: list[float] = []
    try:
        for i in range(count + 50):  # the first 50 warm up the server's caches and connections
            request_id = uuid.uuid4().hex
            now_ms = time.time_ns() // 1_000_000
            payload = encode(
                AccessRequest(
                    request_id=request_id,
                    machine="sew-1",
                    badge=BADGE,
                    sent_at_ms=now_ms,
                    expires_at_ms=now_ms + 500,
                )
            )
            sent = time.perf_counter()
            client.publish(request_topic, payload, qos=1)
            with arrived:
                if not arrived.wait_for(lambda: request_id in replies, timeout=5):  # noqa: B023
                    raise RuntimeError(f"no reply to request {i}")
            if i >= 50:
                samples.append((replies[request_id] - sent) * 1000)
    finally:
        client.disconnect()
        client.loop_stop()
    return samples


def tap_to_relay(mqtt_url: str, count: int, state_dir: Path) -> list[float]:
    """Milliseconds from a badge tap on the real gateway daemon to its relay being switched on."""
    config = parse_config(
        {
            "gateway": {"id": GATEWAY, "site": SITE, "mqtt_url": mqtt_url, "state_dir": str(state_dir)},
            "machine": [
                {
                    "id": "sew-2",
                    "name": "Sewing machine",
                    "reader": {"type": "simulated"},
                    "current": {"type": "simulated"},
                    "switch": {"type": "gpio", "pin": 17},
                    "indicator": {"type": "gpio", "green_pin": 5, "red_pin": 6},
                }
            ],
        },
        environ={},
    )
    samples: list[float] = []
    with Gateway(config, clock=SystemClock()) as gateway:
        if not gateway.wait_connected(10):
            raise RuntimeError("the gateway could not connect")
        station = gateway.machines["sew-2"]
        relay = RelayTimer(station)
        for i in range(count + 20):
            relay.closed.clear()
            tapped = time.perf_counter()
            station.tap(BADGE)
            if not relay.closed.wait(5):
                raise RuntimeError(f"tap {i} was not granted")
            if i >= 20:
                samples.append((relay.closed_at[-1] - tapped) * 1000)
            station.tap(BADGE)  # badge out, so that the next tap opens a new session
            # The next member comes once the last session's events are in: a tap within
            # microseconds of a badge-out, racing its journal write and ingestion, is not a
            # workshop's life (the load benchmarks measure contention).
            if not gateway.wait_for(
                lambda: station.state is MachineStateName.LOCKED and not gateway.journal.unacked(), 5
            ):
                raise RuntimeError("the session did not end")
    return samples


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000, method="inclusive")[round(q * 10) - 1]


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name}: n={len(samples)}  p50 {statistics.median(samples):.2f} ms  p90 {percentile(samples, 90):.2f} ms  "
        f"p99 {percentile(samples, 99):.2f} ms  max {max(samples):.2f} ms",
        flush=True,
    )


def run(requests: int, naive_requests: int, taps: int, postgresql: bool = False) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}, "
        f"database {'PostgreSQL' if postgresql else 'SQLite'}",
        flush=True,
    )
    results: dict[str, list[float]] = {}
    for naive in (False, True):
        label = "naive (Nagle on)" if naive else "product"
        broker_config = "" if not naive else "set_tcp_nodelay false\n"
        with contextlib.ExitStack() as stack:
            directory = stack.enter_context(tempfile.TemporaryDirectory())
            broker = stack.enter_context(mosquitto())
            if naive:
                conf = broker.directory / "mosquitto.conf"
                conf.write_text(conf.read_text().replace("set_tcp_nodelay true\n", broker_config))
                broker.restart()
            database_url = (
                stack.enter_context(postgres()).url if postgresql else f"sqlite:///{directory}/bench.db"
            )
            seed(database_url)
            with server_process(database_url, broker.url, naive):
                results[f"{label} decision"] = decision_round_trips(
                    broker.url, naive_requests if naive else requests, naive
                )
                report(f"{label} decision round trip", results[f"{label} decision"])
                if not naive:
                    results["product tap"] = tap_to_relay(broker.url, taps, Path(directory) / "gateway")
                    report("product tap → relay on (gateway daemon)", results["product tap"])
    with mosquitto() as broker, echo_process(broker.url):
        results["floor"] = decision_round_trips(broker.url, requests, naive=False)
        report("floor: echo responder, no database", results["floor"])
    product = results["product decision"]
    floor = results["floor"]
    print(
        f"product / floor: p50 {statistics.median(product) / statistics.median(floor):.1f}x, "
        f"p99 {percentile(product, 99) / percentile(floor, 99):.1f}x"
    )
    print(f"p50 {statistics.median(product):.2f} ms")
    print(f"p99 {percentile(product, 99):.2f} ms")
    naive_p50 = statistics.median(results["naive (Nagle on) decision"])
    print(f"naive / product p50 ratio: {naive_p50 / statistics.median(product):.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=2000, help="decisions measured as shipped (default 2000)"
    )
    parser.add_argument(
        "--naive-requests", type=int, default=200, help="decisions measured naively (default 200)"
    )
    parser.add_argument("--taps", type=int, default=500, help="taps on the gateway daemon (default 500)")
    parser.add_argument(
        "--postgresql", action="store_true", help="the server on a spawned PostgreSQL, not SQLite"
    )
    args = parser.parse_args()
    run(args.requests, args.naive_requests, args.taps, args.postgresql)


if __name__ == "__main__":
    main()

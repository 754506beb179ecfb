"""The gateway's decision when the server does not answer: from its signed allowlist.

Two measurements:

* ``decision``: :func:`controller.offline.decide` itself, in one process, on snapshots of
  100, 1,000 and 20,000 badges (20,000 is about the largest a 4 MiB snapshot holds), for
  the badge found first, the one found last, and one absent;
* ``tap → relay``: the real gateway daemon (simulated reader, relay on a gpiozero mock pin, a
  signed snapshot of 1,000 badges saved in its state directory), from the tap to the relay
  being told to close: with a broker and no server (the first tap waits for the request
  timeout, 500 ms; once a request went unanswered the gateway decides at once), and with no
  broker at all.

    .venv/bin/python bench/offline_decision.py [--calls 2000] [--taps 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relay_timer import RelayTimer  # noqa: E402
from controller.clock import SystemClock  # noqa: E402
from controller.config import OfflinePolicy, parse_config  # noqa: E402
from controller.gateway import Gateway  # noqa: E402
from controller.offline import AllowlistKeeper, decide  # noqa: E402
from protocol.allowlist import (  # noqa: E402
    Allowlist,
    AllowlistEntry,
    AllowlistGrant,
    AllowlistMachine,
    public_key_text,
    sign,
)
from protocol.messages import AccessRequest, CertificationLevel, DecidedBy, MachineStateName, encode  # noqa: E402
from tests.services import free_port, mosquitto  # noqa: E402

SITE = "bench"
GATEWAY = "gw-offline"
MACHINE = "sew-1"
KEY_ID = "site-1"


def badge(number: int) -> str:
    return f"{0x20000000 + number:08X}"


def snapshot(badges: int, now_ms: int) -> Allowlist:
    grants = [AllowlistGrant(machine=MACHINE, level=CertificationLevel.AUTONOMOUS)]
    return Allowlist(
        site=SITE,
        gateway=GATEWAY,
        version=1,
        issued_at_ms=now_ms,
        expires_at_ms=now_ms + 86_400_000,
        machines=[AllowlistMachine(machine=MACHINE)],
        entries=[
            AllowlistEntry(badge=badge(n), member_id=n + 1, member_name=f"Member {n}", grants=grants)
            for n in range(badges)
        ],
    )


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000, method="inclusive")[round(q * 10) - 1]


def report(name: str, samples: list[float], unit: str = "ms", scale: float = 1.0) -> None:
    values = [sample * scale for sample in samples]
    print(
        f"{name}: n={len(values)}  p50 {statistics.median(values):.3f} {unit}  "
        f"p99 {percentile(values, 99):.3f} {unit}  max {max(values):.3f} {unit}",
        flush=True,
    )


def decisions(calls: int) -> None:
    now_ms = time.time_ns() // 1_000_000
    for size in (100, 1_000, 20_000):
        allowlist = snapshot(size, now_ms)
        for where, uid in (("first", badge(0)), ("last", badge(size - 1)), ("absent", "0BADBAD0")):
            request = AccessRequest(
                request_id="r-1", machine=MACHINE, badge=uid, sent_at_ms=now_ms, expires_at_ms=now_ms + 500
            )
            samples = []
            for _ in range(calls):
                began = time.perf_counter()
                decide(allowlist, OfflinePolicy.CACHE, request, now_ms)
                samples.append(time.perf_counter() - began)
            report(f"decide(), {size:>6} badges, badge {where:<6}", samples, "µs", 1e6)
        # The snapshot's own lookup, a linear scan, which decide() used before it had an index.
        samples = []
        for _ in range(calls):
            began = time.perf_counter()
            allowlist.entry(badge(size - 1))
            samples.append(time.perf_counter() - began)
        report(f"Allowlist.entry(), {size:>6} badges, badge last", samples, "µs", 1e6)


def taps(broker_url: str, count: int, state_dir: Path, key: Ed25519PrivateKey) -> tuple[float, list[float]]:
    """(the first tap's tap → relay, the others'), in ms, on the real daemon with no server."""
    now_ms = time.time_ns() // 1_000_000
    keys = {KEY_ID: public_key_text(key.public_key())}
    keeper = AllowlistKeeper(keys, state_dir, site=SITE, gateway=GATEWAY)
    keeper.offer(encode(sign(snapshot(1_000, now_ms), key, KEY_ID)), now_ms)
    config = parse_config(
        {
            "gateway": {
                "id": GATEWAY,
                "site": SITE,
                "mqtt_url": broker_url,
                "state_dir": str(state_dir),
                "allowlist_keys": keys,
            },
            "machine": [
                {
                    "id": MACHINE,
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
    member = badge(500)
    samples: list[float] = []
    with Gateway(config, clock=SystemClock()) as gateway:
        station = gateway.machines[MACHINE]
        relay = RelayTimer(station)
        time.sleep(1.0)  # connected to the broker, if there is one
        for number in range(count + 1):
            relay.closed.clear()
            tapped = time.perf_counter()
            station.tap(member)
            if not relay.closed.wait(5):
                raise RuntimeError(f"tap {number} was not granted")
            samples.append((relay.closed_at[-1] - tapped) * 1000)
            station.tap(member)  # badge out
            if not gateway.wait_for(lambda: station.state is MachineStateName.LOCKED, 5):
                raise RuntimeError("the session did not end")
        decided = {event.decided_by for event in gateway.journal.unacked()}
        if decided != {DecidedBy.CACHE, None}:
            raise RuntimeError(f"sessions decided by {decided}, not all from the allowlist")
    return samples[0], samples[1:]


def run(calls: int, count: int) -> None:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load}"
    )
    decisions(calls)
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as directory, mosquitto() as broker:
        first, rest = taps(broker.url, count, Path(directory) / "with-broker", key)
        print(
            f"tap → relay, broker up and no server: first tap {first:.1f} ms (waits for the request timeout)"
        )
        report("tap → relay, broker up and no server, once known silent", rest)
    with tempfile.TemporaryDirectory() as directory:
        nowhere = f"mqtt://127.0.0.1:{free_port()}"
        first, rest = taps(nowhere, count, Path(directory) / "no-broker", key)
        print(f"tap → relay, no broker: first tap {first:.1f} ms")
        report("tap → relay, no broker", rest)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls of decide() per case (2000)")
    parser.add_argument("--taps", type=int, default=200, help="taps on the gateway daemon per case (200)")
    args = parser.parse_args()
    run(args.calls, args.taps)


if __name__ == "__main__":
    main()

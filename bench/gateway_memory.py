"""The gateway daemon's resident memory on its real driver code paths, with simulated peers.

Each run starts a real Mosquitto and a stand-in server (tests.controller.responder: it
grants one member and acknowledges events), then the gateway as its own process, run by
``controller.cli.run_gateway`` as ``atelier gateway`` runs it, with two machines:

* an RDM6300 reader on ``socket://`` (pyserial's socket backend), fed by this script: a
  card held on the reader for 0.25 s (five frames, 50 ms apart) every ``--tap-every``
  seconds, alternately opening and closing a session;
* an SCT-013 clamp on an MCP3008 through gpiozero's ``MCP3008`` on mock SPI pins, the
  chip emulated (tests/controller/emulated_adc.py) with a 50 Hz wave, measured in the
  background every 0.5 s over 10 whole cycles;
* the relay and LEDs on gpiozero mock pins.

After ``--seconds`` of taps and sampling it reads VmRSS and VmHWM from
``/proc/<pid>/status``. ``--variant simulated`` runs the same gateway with simulated
parts, to tell the drivers' cost apart. gpiozero's mock pins record every change of
state in a list that is never trimmed (the software SPI clock alone changes 48 times a
conversion); that bookkeeping is not on a Raspberry Pi's code path, so the child caps it
at 32 entries per pin.

    .venv/bin/python bench/gateway_memory.py [--runs 3] [--seconds 60] [--variant drivers]
    .venv/bin/python bench/gateway_memory.py --imports      # what each import adds to RSS
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol.messages import AccessReply, AccessRequest, Reason  # noqa: E402
from tests.controller.responder import MEMBER_ID, Responder  # noqa: E402
from tests.services import mosquitto  # noqa: E402

SITE = "bench-memory"
CARD = bytes.fromhex("0004A1B2C3")  # an EM4100 card: 5 bytes


def grant_the_card(request: AccessRequest) -> AccessReply:
    granted = request.badge == CARD.hex().upper()
    return AccessReply(
        request_id=request.request_id,
        machine=request.machine,
        badge=request.badge,
        granted=granted,
        reason=Reason.GRANTED if granted else Reason.UNKNOWN_BADGE,
        member_id=MEMBER_ID if granted else None,
    )


def rdm6300_frame(card: bytes) -> bytes:
    checksum = 0
    for byte in card:
        checksum ^= byte
    return b"\x02" + card.hex().upper().encode() + f"{checksum:02X}".encode() + b"\x03"


def status_kb(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def config_text(broker_url: str, state_dir: Path, reader_ports: list[int], variant: str) -> str:
    machines = []
    for index, port in enumerate(reader_ports):
        if variant == "drivers":
            reader = f'type = "rdm6300"\nport = "socket://127.0.0.1:{port}"\ndebounce_s = 1.0'
            current = f'type = "mcp3008"\nchannel = {index}\nevery_s = 0.5\ncycles = 10'
        else:
            reader, current = 'type = "simulated"', 'type = "simulated"'
        machines.append(
            f"""
[[machine]]
id = "m-{index}"
name = "Machine {index}"
[machine.reader]
{reader}
[machine.current]
{current}
running_above_a = 0.5
idle_below_a = 0.3
[machine.switch]
type = "gpio"
pin = {(17, 27)[index]}
active_high = false
[machine.indicator]
type = "gpio"
green_pin = {(5, 13)[index]}
red_pin = {(6, 19)[index]}
buzzer_pin = {(20, 21)[index]}
"""
        )
    return f"""
[gateway]
id = "gw-memory"
site = "{SITE}"
mqtt_url = "{broker_url}"
state_dir = "{state_dir}"
sample_interval_ms = 100
telemetry_interval_s = 10
pin_factory = "mock"
""" + "".join(machines)


# --- The gateway process ------------------------------------------------------------------


def wave(peak: float, t: float) -> float:
    """The clamp's output now: a 50 Hz sine of ``peak`` volts on a 1.65 V bias."""
    return 1.65 + peak * math.sin(2 * math.pi * 50 * time.monotonic())


def child(config: str) -> int:
    """Run the gateway as ``atelier gateway`` does, on mock pins with an emulated MCP3008."""
    # Imported here: the parent process must not carry the gateway's modules.
    from gpiozero.pins import mock  # noqa: PLC0415

    from controller import cli, gateway  # noqa: PLC0415
    from tests.controller.emulated_adc import EmulatedMcp3008, SteppingClock  # noqa: PLC0415

    def bounded_states(pin: Any) -> None:
        pin._last_change = time.monotonic()
        pin.states = collections.deque([mock.PinState(0.0, pin._state)], maxlen=32)

    mock.MockPin.clear_states = bounded_states
    factory = mock.MockFactory()
    chip = EmulatedMcp3008(factory, SteppingClock(0))
    for channel, amps in ((0, 2.0), (1, 0.1)):
        peak = amps / 30 * math.sqrt(2)
        chip.waves[channel] = functools.partial(wave, peak)

    def the_factory(name: str) -> Any:
        return factory

    setattr(gateway, "pin_factory_from_name", the_factory)  # noqa: B010 - the bench's own pins
    return cli.run_gateway(argparse.Namespace(config=Path(config)))


# --- One run --------------------------------------------------------------------------------


class Reader:
    """The far end of an RDM6300 on socket://: a card held on it now and then."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connection: socket.socket | None = None
        self.taps = 0

    def accept(self) -> None:
        self.server.settimeout(30)
        self.connection, _ = self.server.accept()

    def hold_card(self) -> None:
        assert self.connection is not None
        for _ in range(5):
            self.connection.sendall(rdm6300_frame(CARD))
            time.sleep(0.05)
        self.taps += 1

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.server.close()


def _first_error(log: str) -> str:
    """The first error logged and its traceback's last line, or ""."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if " ERROR " in line:
            cause = next(
                (
                    later
                    for later in lines[index + 1 : index + 40]
                    if later and not later[0].isspace() and "Error" in later
                ),
                "",
            )
            return f"{line[-120:]} | {cause[-160:]}"
    return ""


def one_run(variant: str, seconds: float, tap_every: float) -> dict[str, Any]:
    with mosquitto() as broker, tempfile.TemporaryDirectory(prefix="atelier-memory-") as work:
        readers = [Reader(), Reader()]
        config = Path(work) / "gw.toml"
        config.write_text(config_text(broker.url, Path(work) / "state", [r.port for r in readers], variant))
        server = Responder(broker.url, SITE, decide=grant_the_card)
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(Path(work) / "gateway.log", "wb"),  # noqa: SIM115 - the child owns it
            cwd=ROOT,
        )
        try:
            if variant == "drivers":
                for reader in readers:
                    reader.accept()
            started = time.monotonic()
            next_tap = started + 2
            while time.monotonic() - started < seconds:
                if process.poll() is not None:
                    raise RuntimeError((Path(work) / "gateway.log").read_text()[-3000:])
                if variant == "drivers" and time.monotonic() >= next_tap:
                    next_tap += tap_every
                    threading.Thread(target=readers[0].hold_card).start()
                    threading.Thread(target=readers[1].hold_card).start()
                time.sleep(0.05)
            memory = status_kb(process.pid)
            log_then = (Path(work) / "gateway.log").read_text()  # the teardown's own errors aside
        finally:
            process.terminate()
            process.wait(timeout=30)
            server.close()
            for reader in readers:
                reader.close()
        requests = len(server.seen.requests)
        events = len(server.seen.events)
    return {
        "variant": variant,
        "rss_kb": memory["VmRSS"],
        "hwm_kb": memory["VmHWM"],
        "taps": sum(r.taps for r in readers),
        "requests": requests,
        "events": events,
        "errors": sum(1 for line in log_then.splitlines() if " ERROR " in line),
        "first_error": _first_error(log_then),
    }


# --- What each import costs ------------------------------------------------------------------

IMPORT_STEPS = [
    "paho.mqtt.client",
    "msgspec",
    "ecdsa",
    "protocol.messages",
    "protocol.allowlist",
    "controller.config",
    "gpiozero",
    "serial",
    "controller.journal",
    "controller.gateway",
    "controller.hardware.factory",
]

_IMPORT_PROBE = """
import importlib, json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
steps = json.loads(sys.argv[1])
out = [("python", rss())]
for name in steps:
    importlib.import_module(name)
    out.append((name, rss()))
print(json.dumps(out))
"""


def import_costs() -> list[tuple[str, int]]:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, json.dumps(IMPORT_STEPS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return [(name, kb) for name, kb in json.loads(result.stdout)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tap-every", type=float, default=3.0, help="seconds between taps on each reader")
    parser.add_argument("--variant", choices=("drivers", "simulated", "both"), default="both")
    parser.add_argument("--imports", action="store_true", help="only measure what each import adds")
    parser.add_argument("--child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.exit(child(args.child))
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    if args.imports:
        previous = 0
        for name, kb in import_costs():
            print(f"{name:55s} {kb / 1024:6.1f} MiB  (+{(kb - previous) / 1024:.1f})")
            previous = kb
        return
    variants = ["simulated", "drivers"] if args.variant == "both" else [args.variant]
    for variant in variants:
        results = [one_run(variant, args.seconds, args.tap_every) for _ in range(args.runs)]
        for result in results:
            print(json.dumps(result))
        rss = statistics.median(r["rss_kb"] for r in results) / 1024
        hwm = statistics.median(r["hwm_kb"] for r in results) / 1024
        print(f"{variant}: median VmRSS {rss:.1f} MiB, median VmHWM {hwm:.1f} MiB over {len(results)} runs")


if __name__ == "__main__":
    main()

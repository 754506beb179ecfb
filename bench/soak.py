"""Fault soak: the demo's workshop for minutes on end, while its components are killed at random.

What runs, each as a process of its own: a Mosquitto, the server (``atelier server`` on
SQLite, signing the allowlist), and the demo's two gateways (``textile``, four machines;
``fablab``, a 3D printer; configured as ``atelier demo`` configures them, deciding from
the signed allowlist when the server does not answer), each reaching the broker through
a TCP proxy that can cut the network. Members come to the machines at random
(mostly the trained ones; sometimes an untrained, suspended or unknown badge), sew or
print in stretches, and badge out or walk away (the idle timeout ends the session).

Meanwhile, at random moments, one of: ``kill -9`` of a gateway (restarted on its state
after a few seconds), of the server, or of the broker (restarted on the same port); or a
network cut between a gateway and the broker (connections reset, refused, or blackholed).

At the end the members leave, every component is brought back, the gateways are given
time to replay their journals and then stopped cleanly, and the books are drawn up: the
minutes each gateway sensed (its journal: the totals of each session's last event)
against the minutes the server billed (its usage sessions), session by session; and every
relay change is checked (none on without a grant of the gateway's current life, none off
while the machine drew current).

    .venv/bin/python bench/soak.py [--minutes 10] [--fault-every 15] [--seed 1]

Exit status 0 when nothing was lost, nothing billed twice and no relay changed unsafely.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.workshop import GATEWAYS, MEMBERS, SITE, UNKNOWN_BADGE, DemoGateway, DemoMachine  # noqa: E402
from demo.workshop import gateway_config as demo_gateway_config  # noqa: E402
from demo.workshop import seed as seed_demo  # noqa: E402
from protocol.messages import DecidedBy, EventKind  # noqa: E402
from server.signing import create_key_file, load_signing_key  # noqa: E402
from tests.faults.harness import (  # noqa: E402
    Books,
    Broker,
    FaultHarnessError,
    GatewayProcess,
    ServerProcess,
    books,
    journal_events,
    relay_log,
    unsafe_relay_changes,
)
from tests.faults.proxy import Mode, TcpProxy  # noqa: E402

PROGRESS_EVERY_S = 30.0


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(config: dict[str, Any]) -> str:
    """The demo's gateway configuration (a dict shaped like the TOML file) as TOML."""
    lines = ["[gateway]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in config["gateway"].items()]
    for machine in config["machine"]:
        lines += ["", "[[machine]]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in machine.items() if not isinstance(v, dict)]
        for key, table in machine.items():
            if isinstance(table, dict):
                lines.append(f"[machine.{key}]")
                lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


@dataclass
class Tally:
    faults: Counter[str] = field(default_factory=Counter)
    taps: int = 0
    grants: int = 0
    refusals: int = 0
    badge_outs: int = 0
    walk_aways: int = 0
    interrupted: int = 0  # an activity cut short by a gateway's death
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def fault(self, name: str) -> None:
        with self.lock:
            self.faults[name] += 1


class Workshop:
    """The running stack: broker, server, gateways and their proxies."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.database_url = f"sqlite:///{workdir / 'atelier.db'}"
        self.broker = Broker()
        seed_demo(self.database_url)
        # As the demo: the server signs an allowlist, from which the gateways decide when it is away.
        key_path = workdir / "site-signing-key.pem"
        create_key_file(key_path)
        key = load_signing_key(key_path)
        assert key is not None
        self.server = ServerProcess(
            self.database_url,
            self.broker.url,
            workdir / "server",
            site=SITE,
            env={"ATELIER_SIGNING_KEY_FILE": str(key_path), "ATELIER_SIGNING_KEY_ID": key.key_id},
        )
        self.proxies: dict[str, TcpProxy] = {}
        self.gateways: dict[str, GatewayProcess] = {}
        self.demo: dict[str, DemoGateway] = {gateway.id: gateway for gateway in GATEWAYS}
        for gateway in GATEWAYS:
            proxy = TcpProxy(self.broker.port)
            directory = workdir / gateway.id
            config = demo_gateway_config(gateway, proxy.url, directory, {key.key_id: key.public_text})
            config["gateway"]["state_dir"] = str(directory / "state")
            self.proxies[gateway.id] = proxy
            # The product's own keepalive and reconnection back-off: nothing shortened.
            self.gateways[gateway.id] = GatewayProcess(
                gateway.id,
                proxy.url,
                directory,
                [m.id for m in gateway.machines],
                reconnect_max=None,
                config_text=to_toml(config),
            )

    def start(self) -> None:
        self.server.start()
        for gateway in self.gateways.values():
            gateway.start()
        self.server.wait_ready()
        for gateway in self.gateways.values():
            gateway.wait_connected(30)

    def close(self) -> None:
        for gateway in self.gateways.values():
            gateway.close()
        for proxy in self.proxies.values():
            proxy.close()
        self.server.stop()
        self.broker.stop()


class Member(threading.Thread):
    """Members coming, one after another, to one machine."""

    def __init__(
        self,
        gateway: GatewayProcess,
        machine: DemoMachine,
        *,
        rng: random.Random,
        tally: Tally,
        stopping: threading.Event,
    ) -> None:
        super().__init__(name=f"member-{machine.id}", daemon=True)
        self.gateway = gateway
        self.machine = machine
        self.rng = rng
        self.tally = tally
        self.stopping = stopping
        trained = [m.badge for m in MEMBERS if set(machine.skills) <= set(m.skills) and not m.suspended]
        others = [m.badge for m in MEMBERS if m.badge not in trained] + [UNKNOWN_BADGE]
        self.trained, self.others = trained, others
        self.badge: str | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._visit()
            except FaultHarnessError:
                self.tally.add("interrupted")
                self.badge = None
                self._pause(1.0, 3.0)  # the gateway died under the member's hands
            self._pause(0.5, 4.0)
        self._leave()

    def _pause(self, low: float, high: float) -> None:
        self.stopping.wait(self.rng.uniform(low, high))

    def _visit(self) -> None:
        gateway, machine = self.gateway, self.machine.id
        if not gateway.running:
            return
        if gateway.machine(machine)["state"] != "locked":
            return  # a session from before (an idle timeout will end it)
        badge = self.rng.choice(self.trained) if self.rng.random() < 0.85 else self.rng.choice(self.others)
        gateway.tap(machine, badge)
        self.tally.add("taps")
        try:
            gateway.wait_machine(machine, 3, interval=0.1, state="unlocked", relay=True)
        except FaultHarnessError:
            if not gateway.running:
                raise
            self.tally.add("refusals")  # refused, or no answer in time (server or broker down)
            return
        self.tally.add("grants")
        self.badge = badge
        for _ in range(self.rng.randint(1, 4)):
            if self.stopping.is_set():
                break
            gateway.amps(machine, self.machine.working_a * self.rng.uniform(0.8, 1.2))
            self._pause(1.0, 8.0)
            gateway.amps(machine, 0.0)
            self._pause(0.5, 4.0)
        if self.rng.random() < 0.75 or self.stopping.is_set():
            self._badge_out()
        else:
            self.tally.add("walk_aways")  # the idle timeout ends the session
            self.badge = None
            self.stopping.wait(8.0)

    def _badge_out(self) -> None:
        gateway, machine = self.gateway, self.machine.id
        if self.badge is None:
            return
        state = gateway.machine(machine)
        if state["state"] == "running":
            gateway.wait_machine(machine, 10, interval=0.1, state="unlocked")
        if gateway.machine(machine)["state"] == "unlocked":
            gateway.tap(machine, self.badge)
            gateway.wait_machine(machine, 5, interval=0.1, state="locked")
            self.tally.add("badge_outs")
        self.badge = None

    def _leave(self) -> None:
        try:
            self.gateway.amps(self.machine.id, 0.0)
            self._badge_out()
        except FaultHarnessError:
            pass


class Chaos(threading.Thread):
    """Kills and cuts at random moments: one fault at a time, each repaired after a while."""

    def __init__(
        self, workshop: Workshop, rng: random.Random, tally: Tally, stopping: threading.Event, every_s: float
    ) -> None:
        super().__init__(name="chaos", daemon=True)
        self.workshop = workshop
        self.rng = rng
        self.tally = tally
        self.stopping = stopping
        self.every_s = every_s
        self.faults: list[Callable[[], None]] = [
            self.kill_gateway,
            self.kill_server,
            self.kill_broker,
            self.cut_network,
        ]
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.rng.expovariate(1 / self.every_s)):
                self.rng.choice(self.faults)()
        except BaseException as error:  # reported by the main thread
            self.error = error
            self.stopping.set()

    def _down_for(self, low: float, high: float) -> None:
        time.sleep(self.rng.uniform(low, high))  # not cut short: a fault is always repaired

    def kill_gateway(self) -> None:
        gateway = self.workshop.gateways[self.rng.choice(list(self.workshop.gateways))]
        gateway.kill()
        self.tally.fault(f"kill -9 gateway {gateway.id}")
        say(f"chaos: kill -9 gateway {gateway.id}")
        self._down_for(0.0, 4.0)
        gateway.start()

    def kill_server(self) -> None:
        self.workshop.server.kill()
        self.tally.fault("kill -9 server")
        say("chaos: kill -9 server")
        self._down_for(0.0, 5.0)
        self.workshop.server.start()
        self.workshop.server.wait_ready(60)

    def kill_broker(self) -> None:
        self.workshop.broker.kill()
        self.tally.fault("kill -9 broker")
        say("chaos: kill -9 broker")
        self._down_for(0.0, 3.0)
        self.workshop.broker.restart()

    def cut_network(self) -> None:
        gateway = self.rng.choice(list(self.workshop.proxies))
        mode = self.rng.choice([Mode.DROP, Mode.REFUSE, Mode.BLACKHOLE])
        proxy = self.workshop.proxies[gateway]
        proxy.cut(mode)
        self.tally.fault(f"network cut ({mode.value})")
        say(f"chaos: network cut ({mode.value}) between {gateway} and the broker")
        self._down_for(1.0, 10.0)
        proxy.restore()


def _drain(workshop: Workshop, timeout: float) -> dict[str, int]:
    """Wait until every gateway's journal is acknowledged, or ``timeout``; the backlogs left."""
    deadline = time.monotonic() + timeout
    backlogs: dict[str, int] = {}
    while True:
        backlogs = {gid: gw.state()["backlog"] for gid, gw in workshop.gateways.items()}
        if not any(backlogs.values()) or time.monotonic() > deadline:
            return backlogs
        time.sleep(0.5)


def _minutes(ms: int) -> str:
    return f"{ms / 60000:.3f} min"


def report(
    all_books: list[Books], tally: Tally, *, held_s: float, unsafe: list[str], elapsed_s: float, offline: int
) -> bool:
    print()
    print(
        f"Soak of {elapsed_s / 60:.1f} minutes on {platform.node()} ({platform.machine()}), Python {platform.python_version()}"
    )
    print("Faults:", ", ".join(f"{name} x{count}" for name, count in sorted(tally.faults.items())) or "none")
    print(
        f"Members: {tally.taps} taps, {tally.grants} granted, {tally.refusals} refused or unanswered, "
        f"{tally.badge_outs} badge-outs, {tally.walk_aways} walked away, "
        f"{tally.interrupted} visits cut short by a gateway's death"
    )
    sensed_sessions = sum(len(b.sensed.sessions) for b in all_books)
    billed_sessions = sum(len(b.billed.sessions) for b in all_books)
    missing = sum(len(b.missing) for b in all_books)
    extra = sum(len(b.extra) for b in all_books)
    differing = sum(len(b.differing) for b in all_books)
    reasons = Counter(t.end_reason for b in all_books for t in b.sensed.sessions.values())
    print(
        f"Sessions: {sensed_sessions} sensed, {billed_sessions} billed; {missing} sensed but not billed, "
        f"{extra} billed but never sensed, {differing} billed with other totals"
    )
    print("  ended by:", ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items(), key=str)))
    print(f"  opened by the gateway alone (offline, from the signed allowlist): {offline}")
    ok = not (missing or extra or differing or unsafe)
    for kind, label in (
        ("running_ms", "running"),
        ("unlocked_ms", "powered (unlocked)"),
        ("idle_ms", "idle"),
    ):
        totals = [b.minutes(kind) for b in all_books]
        sensed_ms, billed_ms, lost, twice = (sum(t[i] for t in totals) for i in range(4))
        ok = ok and lost == 0 and twice == 0
        print(
            f"Minutes {label}: sensed {_minutes(sensed_ms)}, billed {_minutes(billed_ms)}, "
            f"lost {_minutes(lost)} ({lost} ms), billed twice {_minutes(twice)} ({twice} ms)"
        )
    unacked = sum(len(b.sensed.unacked) for b in all_books)
    print(f"Events: {sum(len(b.sensed.seqs) for b in all_books)} journaled, {unacked} never acknowledged")
    sensed_running = sum(b.minutes("running_ms")[0] for b in all_books)
    print(
        f"Running time the members held the current: {_minutes(round(held_s * 1000))}; sensed "
        f"{_minutes(sensed_running)} (a gateway killed mid-seam loses the time since its last checkpoint)"
    )
    print(f"Unsafe relay changes: {len(unsafe)}")
    for line in unsafe[:20]:
        print("  " + line)
    for b in all_books:
        if not b.balanced:
            print(b.describe())
    print("RESULT:", "0 lost, 0 billed twice" if ok else "FAILED (see above)")
    return ok


def run(workshop: Workshop, args: argparse.Namespace, rng: random.Random, tally: Tally) -> bool:
    """Members and faults for ``args.minutes``; then everything back, replayed, stopped: the books."""
    workshop.start()
    say("soak: workshop up (broker, server, gateways textile and fablab)")
    stopping = threading.Event()
    members = [
        Member(workshop.gateways[g.id], m, rng=random.Random(rng.random()), tally=tally, stopping=stopping)
        for g in GATEWAYS
        for m in g.machines
    ]
    chaos_stop = threading.Event()
    chaos = Chaos(workshop, random.Random(rng.random()), tally, chaos_stop, args.fault_every)
    started = time.monotonic()
    for member in members:
        member.start()
    chaos.start()
    end = started + args.minutes * 60
    next_progress = started + PROGRESS_EVERY_S
    while time.monotonic() < end and not chaos_stop.is_set():
        time.sleep(1)
        if time.monotonic() >= next_progress:
            next_progress += PROGRESS_EVERY_S
            say(
                f"soak: {(time.monotonic() - started) / 60:.1f} min, {sum(tally.faults.values())} faults, "
                f"{tally.grants} sessions granted"
            )
    chaos_stop.set()
    chaos.join()
    if chaos.error is not None:
        raise chaos.error
    elapsed = time.monotonic() - started
    say("soak: faults over; every component back; members finish and leave")
    _bring_back(workshop)
    stopping.set()
    for member in members:
        member.join(60)
    left = _drain(workshop, args.drain)
    say(f"soak: replay over; backlogs left {left}; gateways stop cleanly")
    for gateway in workshop.gateways.values():
        gateway.stop()
    all_books = [books(gw.journal_path, workshop.database_url, gw.id) for gw in workshop.gateways.values()]
    unsafe = [p for gw in workshop.gateways.values() for p in unsafe_relay_changes(relay_log(gw))]
    held = sum(h.total_s for gw in workshop.gateways.values() for h in gw.held.values())
    offline = sum(
        1
        for gw in workshop.gateways.values()
        for event, _ in journal_events(gw.journal_path)
        if event.kind is EventKind.SESSION_STARTED and event.decided_by is not DecidedBy.SERVER
    )
    return report(all_books, tally, held_s=held, unsafe=unsafe, elapsed_s=elapsed, offline=offline)


def _bring_back(workshop: Workshop) -> None:
    for proxy in workshop.proxies.values():
        proxy.restore()
    if not workshop.broker.running:
        workshop.broker.restart()
    if not workshop.server.running:
        workshop.server.start()
    workshop.server.wait_ready(60)
    for gateway in workshop.gateways.values():
        if not gateway.running:
            gateway.start()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the faults go on (default 10)")
    parser.add_argument("--fault-every", type=float, default=15.0, help="mean seconds between faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain", type=float, default=120.0, help="seconds allowed for the final replay")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, journals)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="atelier-soak-"))
    say(f"soak: {args.minutes} minutes, a fault every {args.fault_every} s on average; in {workdir}")
    workshop = Workshop(workdir)
    ok = False
    try:
        ok = run(workshop, args, random.Random(args.seed), Tally())
    finally:
        workshop.close()
        if args.keep or not ok:
            say(f"soak: logs and journals kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

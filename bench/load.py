"""Load at scale: 1,000 gateways against one Mosquitto and 1, 2 or 4 servers on one PostgreSQL.

What runs, each a process of its own: a Mosquitto and a PostgreSQL spawned for the bench
(``tests/services.py``); N ``atelier server`` processes sharing the request and event
subscriptions (``ATELIER_MQTT_SHARED_GROUP``); and worker processes, each playing its share of
the gateways on one MQTT connection (``bench/load_gateways.py``). The database is seeded with
the gateways (two machines each, requiring a skill), members with badges, nine in ten of them
certified.

Two loads, one after the other, each a closed loop with a bounded number of messages in
flight: access requests (decisions per second, and their round trip under that load), then
usage events in sessions of four, a share of them published twice at once (the copies reach
two servers together) and a share replayed later (ingested events per second). At the end of
each, the books: every request answered once (replies counted by the workers, rows in the
decision log), every event acknowledged at each delivery and applied once (rows of the applied
events, the sessions and their running time, against what the workers published).

    .venv/bin/python bench/load.py --servers 1 2 4 --seconds 30
    .venv/bin/python bench/load.py --servers 1 --mode decisions --profile /tmp/load-profile
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load_database import SITE, badge_uids, books, clear_usage, gateway_slugs, seed  # noqa: E402
from bench.load_gateways import WorkerSpec, worker_main  # noqa: E402
from bench.load_profile import summarise  # noqa: E402
from bench.load_servers import Server, cores_used, cpu_snapshot, postgres_pids, servers  # noqa: E402
from tests.services import Postgres, mosquitto, postgres  # noqa: E402

# --- one load ----------------------------------------------------------------------------------


@dataclass
class Options:
    gateways: int
    machines: int
    members: int
    workers: int
    in_flight: int
    warmup_s: float
    seconds: float
    duplicates: float
    replays: float
    profile: Path | None
    profile_rate: int
    profile_what: str


def percentile(samples: list[float], q: float) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=1000, method="inclusive")[round(q * 10) - 1]


def run_load(
    mode: str,
    run: str,
    options: Options,
    *,
    broker_url: str,
    database: Postgres,
    broker_pid: int,
    started: list[Server],
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    ready = [context.Event() for _ in range(options.workers)]
    go = context.Event()
    start_at = context.Value("d", 0.0)
    results: Any = context.Queue()
    slugs = gateway_slugs(options.gateways)
    badges = tuple(badge_uids(options.members))
    per_worker = max(1, options.in_flight // options.workers)
    boot = int(time.time())  # a new boot of every gateway: each run's statuses are births
    workers = []
    for index in range(options.workers):
        spec = WorkerSpec(
            index=index,
            run=run,
            mode=mode,
            broker_url=broker_url,
            site=SITE,
            gateways=tuple(slugs[index :: options.workers]),
            machines_per_gateway=options.machines,
            badges=badges,
            in_flight=per_worker,
            warmup_s=options.warmup_s,
            seconds=options.seconds,
            duplicates=options.duplicates,
            replays=options.replays,
        )
        process = context.Process(
            target=worker_main,
            args=(spec,),
            kwargs={"ready": ready[index], "go": go, "start_at": start_at, "results": results, "boot": boot},
            daemon=True,
        )
        process.start()
        workers.append(process)
    for event in ready:
        if not event.wait(120):
            raise RuntimeError("a worker did not connect")
    start_at.value = time.monotonic() + 1.0
    go.set()
    groups = {
        "servers": [server.process.pid for server in started],
        "postgres": postgres_pids(database),
        "mosquitto": [broker_pid],
        "workers": [process.pid for process in workers if process.pid is not None],
    }
    window_start = start_at.value + options.warmup_s
    time.sleep(max(0.0, window_start - time.monotonic()))
    profiler = None
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
        raw = options.profile / f"{run}.txt"
        profiler = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(started[0].process.pid),
                "--duration", str(int(options.seconds)), "--rate", str(options.profile_rate),
                "--format", "raw", "--threads", "--nonblocking", "--output", str(raw),
                *([f"--{options.profile_what}"] if options.profile_what != "active" else []),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    cpu_before, metrics_before = cpu_snapshot(groups), [server.scrape() for server in started]
    time.sleep(max(0.0, window_start + options.seconds - time.monotonic()))
    cpu_after, metrics_after = cpu_snapshot(groups), [server.scrape() for server in started]
    outcomes = [results.get(timeout=options.seconds + 120) for _ in workers]
    for process in workers:
        process.join(timeout=30)
    errors = [outcome["error"] for outcome in outcomes if outcome["error"]]
    if errors:
        raise RuntimeError(f"workers failed: {errors}")
    counter = "atelier_decisions_total" if mode == "decisions" else "atelier_events_ingested_total"
    report: dict[str, Any] = {
        "mode": mode,
        "servers": len(started),
        "window_s": options.seconds,
        "cores": cores_used(cpu_before, cpu_after, options.seconds),
        "per_server": [
            (after[counter] - before[counter]) / options.seconds
            for before, after in zip(metrics_before, metrics_after, strict=True)
        ],
    }
    latencies = sorted(latency for outcome in outcomes for latency in outcome["latencies_ms"])
    report["latency_ms"] = {
        "n": len(latencies),
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
    }
    totals = {
        name: sum(outcome[name] for outcome in outcomes)
        for name in ("sent", "answered", "unique", "in_window", "duplicates", "unanswered", "refused_acks",
                     "sessions_started", "sessions_ended", "running_ms")
    }  # fmt: skip
    report["totals"] = totals
    report["per_second"] = totals["in_window"] / options.seconds
    outcome_counts: dict[str, int] = {}
    for outcome in outcomes:
        for reason, count in outcome["outcomes"].items():
            outcome_counts[reason] = outcome_counts.get(reason, 0) + count
    report["outcomes"] = outcome_counts
    report["books"] = books(mode, run, database.url, totals, floor=started[0].echo)
    if profiler is not None and options.profile is not None:
        profiler.wait(timeout=60)
        report["profile"] = str(options.profile / f"{run}.txt")
        print(summarise(options.profile / f"{run}.txt"), flush=True)
    return report


def describe(report: dict[str, Any]) -> str:
    latency, cores, totals = report["latency_ms"], report["cores"], report["totals"]
    what = "decisions" if report["mode"] == "decisions" else "events ingested"
    per_server = ", ".join(f"{rate:.0f}" for rate in report["per_server"])
    if any(math.isnan(rate) for rate in report["per_server"]):  # echo responders count nothing
        per_server = f"{report['per_second'] / report['servers']:.0f} on average, echo responders"
    books = report["books"]
    lines = [
        f"{report['servers']} server(s), {what}: {report['per_second']:.0f}/s "
        f"(per process, by its /metrics: {per_server})",
        f"  round trip under load: n={latency['n']} p50 {latency['p50']:.2f} ms, p90 {latency['p90']:.2f} ms, "
        f"p99 {latency['p99']:.2f} ms, max {latency['max']:.2f} ms",
        "  cores used: "
        + ", ".join(f"{name} {value:.2f}" for name, value in cores.items())
        + (
            f"; CPU per {what.split(maxsplit=1)[0][:-1]}: servers {1000 * cores['servers'] / report['per_second']:.2f} ms, "
            f"postgres {1000 * cores['postgres'] / report['per_second']:.2f} ms"
            if report["per_second"]
            else ""
        ),
        f"  sent {totals['sent']}, answered {totals['answered']}, distinct {totals['unique']}"
        + (f", outcomes {report['outcomes']}" if report["outcomes"] else ""),
        f"  books: {'EXACTLY ONCE' if books['exactly_once'] else 'MISMATCH'}: "
        + json.dumps({key: value for key, value in books.items() if key != "exactly_once"}),
    ]
    return "\n".join(lines)


def machine_line() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4], help="server processes, per run")
    parser.add_argument("--mode", choices=["decisions", "events", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window of each load (30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the window (5)")
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=2, help="machines per gateway (2)")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4, help="load generator processes (4)")
    parser.add_argument("--in-flight", type=int, default=32, help="messages in flight, over all workers (32)")
    parser.add_argument(
        "--duplicates", type=float, default=0.05, help="events published twice at once (0.05)"
    )
    parser.add_argument("--replays", type=float, default=0.05, help="events replayed later (0.05)")
    parser.add_argument("--profile", type=Path, help="py-spy the first server during each window, into DIR")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second (100)")
    parser.add_argument(
        "--profile-what",
        choices=["active", "idle", "gil"],
        default="active",
        help="py-spy's samples: of running threads (active, the default), of every thread, waiting "
        "ones included (idle), or of the thread holding the GIL only (gil)",
    )
    parser.add_argument("--json", type=Path, help="write every report to this file")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="echo responders instead of servers: paho, the broker and the contract's decoding only",
    )
    args = parser.parse_args()
    options = Options(
        args.gateways, args.machines, args.members, args.workers, args.in_flight, args.warmup, args.seconds,
        args.duplicates, args.replays, args.profile, args.profile_rate, args.profile_what,
    )  # fmt: skip
    modes = ["decisions", "events"] if args.mode == "both" else [args.mode]
    print(machine_line(), flush=True)
    reports = []
    directory = Path(tempfile.mkdtemp(prefix="atelier-load-"))
    try:
        with mosquitto() as broker, postgres() as database:
            began = time.monotonic()
            seed(database.url, args.gateways, args.machines, args.members)
            print(
                f"seeded {args.gateways} gateways, {args.gateways * args.machines} machines, "
                f"{args.members} members in {time.monotonic() - began:.1f} s",
                flush=True,
            )
            for count in args.servers:
                clear_usage(database.url)
                with servers(count, database.url, broker.url, directory, floor=args.floor) as started:
                    for mode in modes:
                        run = f"n{count}{mode[0]}{int(time.time()) % 100000}"
                        report = run_load(
                            mode,
                            run,
                            options,
                            broker_url=broker.url,
                            database=database,
                            broker_pid=broker.process.pid,
                            started=started,
                        )
                        report["load_average"] = os.getloadavg()
                        print(describe(report), flush=True)
                        reports.append(report)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(machine_line())
    if args.json is not None:
        args.json.write_text(json.dumps(reports, indent=2))
    if not all(report["books"]["exactly_once"] for report in reports):
        sys.exit("the books do not balance: see MISMATCH above")


if __name__ == "__main__":
    main()

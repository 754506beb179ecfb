"""What counting costs a decision, and what offering a telemetry sample costs the ingest lane.

Runs, in one process and without a broker, exactly the code the decision lane
adds per access request (count the outcome, time the reply into the histogram)
and what the ingest lane does per telemetry sample (put it in the writer's
bounded buffer, here full, so that the oldest is dropped: the worst case).

    .venv/bin/python bench/metrics_overhead.py [--operations 100000] [--runs 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.observability import ServerMetrics
from server.telemetry import MachineSample, TelemetryWriter

REPLY_TOPIC = "atelier/v1/lyon/gw-textile-1/access/reply"
REPLY_SUFFIX = "/access/reply"


def per_operation_ns(operation: Callable[[int], None], operations: int, runs: int) -> list[float]:
    """The mean cost of one operation in each run, in nanoseconds."""
    results = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        for i in range(operations):
            operation(i)
        results.append((time.perf_counter_ns() - started) / operations)
    return results


def report(what: str, results: list[float]) -> None:
    print(
        f"{what}: median {statistics.median(results):.0f} ns, "
        f"best {min(results):.0f} ns, worst {max(results):.0f} ns ({len(results)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--operations", type=int, default=100_000, help="operations per run (default 100000)")
    parser.add_argument("--runs", type=int, default=7, help="runs (default 7)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")

    metrics = ServerMetrics()
    arrived = time.monotonic()

    def decision(i: int) -> None:
        # As in Handlers.access_request and the decision lane's _on_message.
        metrics.decided("granted" if i % 4 else "not_certified")
        if REPLY_TOPIC.endswith(REPLY_SUFFIX):
            metrics.decision_took(time.monotonic() - arrived)

    report("decision bookkeeping", per_operation_ns(decision, args.operations, args.runs))

    # Nothing listens on port 9: the writer's thread is not started, so the buffer fills.
    writer = TelemetryWriter(
        "http://127.0.0.1:9", org="o", bucket="b", capacity=10_000, flush_interval_s=1, timeout_s=1
    )
    sample = MachineSample("lyon", "gw-textile-1", "sewing-1", 1_767_225_600_000, 2.5, True)
    for _ in range(10_000):
        writer.offer(sample)
    report(
        "telemetry offer, buffer full",
        per_operation_ns(lambda _: writer.offer(sample), args.operations, args.runs),
    )


if __name__ == "__main__":
    main()

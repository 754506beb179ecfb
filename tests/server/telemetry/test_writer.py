"""The telemetry writer against a real victoria-metrics, a store that is down, and one that hangs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from server.telemetry import MachineSample, TelemetryWriter
from tests.server.telemetry.support import StalledStore, wait_for
from tests.services import VictoriaMetrics, free_port


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def writer_for(
    url: str, *, capacity: int = 1000, timeout_s: float = 5.0, batch_size: int = 100
) -> TelemetryWriter:
    return TelemetryWriter(
        url,
        org="atelier",
        bucket="atelier",
        token="unused-by-victoria-metrics",  # noqa: S106 - not a secret
        capacity=capacity,
        flush_interval_s=0.05,
        timeout_s=timeout_s,
        batch_size=batch_size,
    )


@pytest.fixture
def stalled_store() -> Iterator[StalledStore]:
    store = StalledStore()
    yield store
    store.close()


def test_samples_are_written_in_batches_and_read_back(telemetry_store: VictoriaMetrics, site_id: str) -> None:
    t0 = now_ms() - 300_000  # all in the past: the export ends at "now"
    samples = [
        MachineSample(site_id, "gw-1", machine, t0 + i * 1000, current, running, power)
        for i in range(120)  # more than one batch of 100
        for machine, current, running, power in (
            ("sewing-1", 2.5 + i, True, None),
            ("printer-1", 0.0, False, 12.5),
        )
    ]
    writer = writer_for(telemetry_store.url)
    writer.start()
    try:
        for sample in samples:
            writer.offer(sample)
        wait_for(lambda: writer.stats.written == len(samples), "every sample written")
    finally:
        writer.stop()
    assert writer.stats.dropped == 0

    def exported() -> dict[tuple[str, str], dict[int, float]] | None:
        series = {
            (found["metric"]["__name__"], found["metric"]["machine"]): dict(
                zip(found["timestamps"], found["values"], strict=True)
            )
            for found in telemetry_store.export(f'{{site="{site_id}"}}')
        }
        complete = len(series) == 5 and all(len(points) == 120 for points in series.values())
        return series if complete else None

    series = wait_for(exported, "the points in /api/v1/export")
    for found in telemetry_store.export(f'{{site="{site_id}"}}'):
        assert found["metric"]["gateway"] == "gw-1"
    # victoria-metrics names a series <measurement>_<field>.
    assert series[("machine_current_a", "sewing-1")][t0 + 7000] == 9.5
    assert series[("machine_running", "sewing-1")][t0] == 1
    assert set(series[("machine_running", "printer-1")].values()) == {0}
    assert set(series[("machine_current_a", "printer-1")].values()) == {0.0}
    assert set(series[("machine_power_w", "printer-1")].values()) == {12.5}
    assert ("machine_power_w", "sewing-1") not in series


def test_a_store_that_is_down_costs_the_oldest_samples_and_they_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = writer_for(f"http://127.0.0.1:{free_port()}", capacity=10, batch_size=5)  # nothing listens
    writer.start()
    try:
        started = time.monotonic()
        for n in range(50):
            writer.offer(MachineSample("s", "g", "m", n, 1.0, True))
        offering = time.monotonic() - started
        wait_for(lambda: writer.stats.failing, "the writer to notice the store is down")
        stats = writer.stats
        # Everything beyond the bound was dropped, and nothing was written.
        assert stats.written == 0
        assert stats.dropped + stats.buffered == 50
        assert stats.dropped >= 40
    finally:
        caplog.set_level(logging.WARNING)
        writer.stop()
    # Offering never waited for the store: 50 samples take microseconds each.
    assert offering < 0.5
    # What was still held when it stopped is counted as dropped too.
    assert (writer.stats.dropped, writer.stats.buffered) == (50, 0)
    assert "failed" in caplog.text


def test_a_store_that_hangs_only_holds_the_writer_thread(stalled_store: StalledStore) -> None:
    writer = writer_for(stalled_store.url, capacity=20, timeout_s=30.0, batch_size=5)
    writer.start()
    try:
        writer.offer(MachineSample("s", "g", "m", 0, 1.0, True))
        assert stalled_store.accepted.wait(10), "the writer never connected"
        # The writer now waits for an answer that will not come, for up to 30 s.
        started = time.monotonic()
        for n in range(1, 101):
            writer.offer(MachineSample("s", "g", "m", n, 1.0, True))
        assert time.monotonic() - started < 0.5
        stats = writer.stats
        assert stats.written == 0
        assert stats.buffered == 20  # the bound; the batch in flight is outside it
        assert stats.dropped == 100 - 20
    finally:
        # The store goes away: the write in flight fails at once, and the writer can stop.
        stalled_store.close()
        started = time.monotonic()
        writer.stop()
    assert time.monotonic() - started < 10
    assert writer.stats.written == 0
    assert writer.stats.dropped == 101


def test_a_batch_the_store_refuses_for_good_is_dropped(
    telemetry_store: VictoriaMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    # victoria-metrics answers 4xx to a write on a path it does not serve.
    writer = writer_for(f"{telemetry_store.url}/no-such-prefix", batch_size=10)
    writer.start()
    try:
        for n in range(5):
            writer.offer(MachineSample("s", "g", "m", n, 1.0, True))
        wait_for(lambda: writer.stats.dropped == 5, "the refused batch to be dropped")
        assert writer.stats.written == 0
    finally:
        writer.stop()
    assert "refused 5 samples for good" in caplog.text

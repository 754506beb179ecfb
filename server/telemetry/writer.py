"""Telemetry to an InfluxDB-API store, from a thread of its own.

:meth:`TelemetryWriter.offer` is what the ingest lane calls for each sample: it
puts the sample in a bounded buffer and returns, whatever the store is doing.
A background thread takes batches out and writes them with influxdb-client's
synchronous write API and a short timeout, so a slow or absent store only ever
slows that thread. A batch the store could not take (unreachable, timed out,
5xx, 429) goes back into the buffer and is tried again after a back-off; a
batch it refuses for good (a bad token, an unknown bucket: other 4xx) is
dropped. Either way the buffer stays within its bound by dropping its oldest
samples, and every dropped sample is counted.

The writer reads nothing but the samples it is given: no database, no billing.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from server.telemetry.buffer import SampleBuffer
from server.telemetry.points import MachineSample

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
"""Samples per write: about 500 kB of line protocol, a fraction of a second for a store."""

MAX_BACKOFF_S = 30.0
"""The longest wait between two tries while the store fails."""

_RETRYABLE_STATUS = frozenset({408, 429})


class _Outcome(enum.Enum):
    WRITTEN = "written"
    KEPT = "kept"  # not written, back in the buffer to be tried again
    REFUSED = "refused"  # not written, and dropped: trying again cannot help


@dataclass(frozen=True, slots=True)
class WriterStats:
    written: int
    dropped: int
    buffered: int
    failing: bool


class TelemetryWriter:
    """Buffers samples and writes them to ``bucket`` at ``url``; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        url: str,
        *,
        org: str,
        bucket: str,
        token: str | None = None,
        capacity: int,
        flush_interval_s: float,
        timeout_s: float,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.url, self.org, self.bucket = url, org, bucket
        self._buffer = SampleBuffer(capacity)
        self._flush_interval_s = flush_interval_s
        self._timeout_s = timeout_s
        self._batch_size = batch_size
        # A total timeout per request (connect and read): a store that accepts and never
        # answers costs this thread that long, and nothing else.
        self._client = InfluxDBClient(
            url=url, token=token or "", org=org, timeout=max(1, int(timeout_s * 1000))
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0
        self._failing = False
        self._failing_since = 0.0

    # The ingest lane's side: never waits.

    def offer(self, sample: MachineSample) -> None:
        """Queue ``sample`` for the store; drops the oldest queued sample when full."""
        held = self._buffer.put(sample)
        # Wake the writer when a full batch is waiting, but not while it is backing off
        # from a failing store: that is what the back-off is for.
        if held == self._batch_size and not self._failing:
            self._wake.set()

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            dropped=self._buffer.dropped,
            buffered=len(self._buffer),
            failing=self._failing,
        )

    # Lifecycle.

    @property
    def running(self) -> bool:
        """The writer's thread is alive: started, and not stopped yet."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="atelier-telemetry", daemon=True)
        self._thread.start()
        log.info("writing telemetry to %s, bucket %s", self.url, self.bucket)

    def stop(self) -> None:
        """Write what is buffered if the store answers, drop the rest, and stop the thread.

        Takes at most about one write timeout more than the last writes themselves.
        """
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout=2 * self._timeout_s + 5)
        if thread.is_alive():
            # Stuck in a write past its timeout: it exits by itself when the write returns.
            log.warning("the telemetry writer is still waiting for %s; not waiting any longer", self.url)
            return
        self._client.close()  # type: ignore[no-untyped-call]  # influxdb-client leaves it unannotated

    # The writer thread.

    def _run(self) -> None:
        backoff = self._flush_interval_s
        while not self._stopping.is_set():
            self._wake.wait(backoff if self._failing else self._flush_interval_s)
            self._wake.clear()
            if self._stopping.is_set():
                break
            # Each failed try doubles the wait before the next one.
            backoff = self._flush_interval_s if self._flush() else min(backoff * 2, MAX_BACKOFF_S)
        # A last flush, unless the store is known to be failing: stopping must be quick.
        if not self._failing:
            self._flush()
        lost = self._buffer.drop_all()
        if lost:
            log.warning("dropped %d telemetry samples not written before stopping", lost)

    def _flush(self) -> bool:
        """Write batches until the buffer is empty; False when a write failed."""
        while True:
            batch = self._buffer.take(self._batch_size)
            if not batch:
                return True
            if self._write(batch) is not _Outcome.WRITTEN:
                return False

    def _write(self, batch: list[MachineSample]) -> _Outcome:
        try:
            self._api.write(bucket=self.bucket, org=self.org, record=[sample.line() for sample in batch])
        except ApiException as error:
            if (
                error.status is not None
                and 400 <= error.status < 500
                and error.status not in _RETRYABLE_STATUS
            ):
                self._buffer.count_dropped(len(batch))
                self._failed(f"HTTP {error.status} {error.reason}: {_body(error)}", refused=len(batch))
                return _Outcome.REFUSED
            self._failed(f"HTTP {error.status} {error.reason}", kept=batch)
            return _Outcome.KEPT
        except Exception as error:  # unreachable, timed out, reset: urllib3 and OSError alike
            self._failed(f"{type(error).__name__}: {error}", kept=batch)
            return _Outcome.KEPT
        self._written += len(batch)
        if self._failing:
            self._failing = False
            log.warning(
                "telemetry store %s is back after %.0f s; %d samples dropped so far",
                self.url,
                time.monotonic() - self._failing_since,
                self._buffer.dropped,
            )
        return _Outcome.WRITTEN

    def _failed(self, why: str, *, kept: list[MachineSample] | None = None, refused: int = 0) -> None:
        lost = self._buffer.give_back(kept) if kept else 0
        if not self._failing:
            # Said once per outage, not once per try.
            self._failing = True
            self._failing_since = time.monotonic()
            if refused:
                log.error("telemetry store %s refused %d samples for good: %s", self.url, refused, why)
            else:
                log.warning(
                    "telemetry store %s failed (%s); keeping up to %d samples, the oldest dropped beyond",
                    self.url,
                    why,
                    self._buffer.capacity,
                )
        elif lost:
            log.debug("telemetry buffer full: dropped %d samples", lost)


def _body(error: ApiException) -> str:
    body = error.body
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    return text[:200]

"""A bounded buffer of telemetry samples that never makes its producer wait.

When it is full, the **oldest** sample goes to make room for the new one. The
newest samples say what the machines are doing now, which is what the live
charts and the state panels show; when the store comes back after an outage,
a hole in old history matters less than a hole at the present, and the store
accepts points out of time order. Telemetry is at most once by contract, and
billing never reads it, so a dropped sample costs a chart a dot, nothing more.

The lock is held for a few list operations at most, by two threads (the
ingest lane putting, the writer taking), so a put costs about a microsecond.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from server.telemetry.points import MachineSample


class SampleBuffer:
    """Holds at most ``capacity`` samples; counts the ones it had to drop."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a buffer holds at least one sample, not {capacity}")
        self.capacity = capacity
        self._samples: deque[MachineSample] = deque()
        self._lock = threading.Lock()
        self._dropped = 0

    def put(self, sample: MachineSample) -> int:
        """Add ``sample``, dropping the oldest if full; returns how many are held now."""
        with self._lock:
            if len(self._samples) >= self.capacity:
                self._samples.popleft()
                self._dropped += 1
            self._samples.append(sample)
            return len(self._samples)

    def take(self, limit: int) -> list[MachineSample]:
        """Remove and return up to ``limit`` samples, oldest first."""
        with self._lock:
            count = min(limit, len(self._samples))
            return [self._samples.popleft() for _ in range(count)]

    def give_back(self, samples: Sequence[MachineSample]) -> int:
        """Put samples that could not be written back in front, oldest first.

        Samples that arrived meanwhile are newer and stay; if the whole no longer
        fits, the oldest go. Returns how many of ``samples`` were dropped.
        """
        with self._lock:
            room = max(0, self.capacity - len(self._samples))
            kept = samples[max(0, len(samples) - room) :] if room else []
            self._samples.extendleft(reversed(kept))
            lost = len(samples) - len(kept)
            self._dropped += lost
            return lost

    def drop_all(self) -> int:
        """Forget every sample held, counting them as dropped; returns how many."""
        with self._lock:
            count = len(self._samples)
            self._samples.clear()
            self._dropped += count
            return count

    def count_dropped(self, count: int) -> None:
        """Count samples dropped outside the buffer (refused by the store for good)."""
        with self._lock:
            self._dropped += count

    @property
    def dropped(self) -> int:
        return self._dropped

    def __len__(self) -> int:
        return len(self._samples)

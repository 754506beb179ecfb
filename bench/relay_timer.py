"""When a gateway's relay is told to close: the end of a tap → relay measurement."""

from __future__ import annotations

import threading
import time

from controller.station import MachineStation


class RelayTimer:
    """Wraps ``station``'s switch so that each order to close it is timed and signalled.

    Instrumentation for the benchmarks only: ``closed`` is set, and the moment appended to
    ``closed_at`` (``time.perf_counter``), each time the gateway switches the machine on.
    """

    def __init__(self, station: MachineStation) -> None:
        self.closed = threading.Event()
        self.closed_at: list[float] = []
        switch_on = station.switch.on

        def timed_on() -> None:
            self.closed_at.append(time.perf_counter())
            switch_on()
            self.closed.set()

        station.switch.on = timed_on  # type: ignore[method-assign]

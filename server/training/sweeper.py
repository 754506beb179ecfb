"""Runs the expiry sweep when the server starts, then every ``expiry_sweep_interval_s``."""

import logging
import threading

from server.clock import Clock, utc_now
from server.db import SessionFactory
from server.training.expiry import Lapse, sweep_expiries

log = logging.getLogger(__name__)


class ExpirySweeper:
    """A daemon thread that records expiries; a failed sweep is logged and tried again next time.

    The access check does not wait for it: it judges expiry by date and by disuse on
    every tap. The sweep records each expiry once, as an event in the history.
    """

    def __init__(self, session_factory: SessionFactory, interval_s: float, *, clock: Clock = utc_now) -> None:
        self._sessions = session_factory
        self._interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swept = threading.Event()
        """Set after each sweep, done or failed; for whoever waits for the first one."""

    def sweep_once(self) -> list[Lapse]:
        with self._sessions() as db:
            return sweep_expiries(db, self._clock())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                lapses = self.sweep_once()
                log.info("expiry sweep: %d certification(s) newly expired", len(lapses))
            except Exception:
                log.exception("expiry sweep failed; trying again in %s s", self._interval_s)
            self.swept.set()
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="expiry-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

"""Keeps each gateway's signed allowlist, retained on the broker, in step with the database.

A thread of its own recomputes every gateway's snapshot every ``allowlist_refresh_s``
(:func:`server.allowlist.build_allowlists`, a few queries for the whole site) and
publishes a gateway's again only when it is due (:func:`server.allowlist.is_due`): its
content changed (ignoring version and times), half of its life has passed, or it was
asked for (the service connected to the broker, which may have lost its retained
messages; a gateway announced itself online) and none was issued since. Neither the
decision lane nor the ingest lane ever waits for it: it has an MQTT connection of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from protocol.allowlist import MAX_ALLOWLIST_BYTES, Allowlist
from protocol.messages import encode
from protocol.topics import Channel, topic
from server.allowlist import build_allowlists, is_due, issue
from server.clock import Clock, from_ms, utc_now
from server.db import SessionFactory
from server.signing import SigningKey

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], bool]
"""Publish a payload retained at QoS 1 on a topic; True once the broker has it (PUBACK)."""

MAX_SIGNED_BYTES = MAX_ALLOWLIST_BYTES + 1024
"""What :func:`protocol.allowlist.receive` accepts: a larger payload would be refused by every gateway."""

RETRY_MAX = timedelta(minutes=5)


class AllowlistPublisher:
    """Publishes the snapshots of the gateways of ``site``, signed with ``key``, through ``publish``."""

    def __init__(
        self,
        site: str,
        session_factory: SessionFactory,
        key: SigningKey,
        publish: Publish,
        *,
        ready: Callable[[], bool] = lambda: True,
        clock: Clock = utc_now,
        refresh_s: float = 2.0,
        ttl: timedelta = timedelta(days=7),
    ) -> None:
        self.site = site
        self._sessions = session_factory
        self._key = key
        self._publish = publish
        self._ready = ready
        self._clock = clock
        self._refresh_s = refresh_s
        self._ttl = ttl
        self._lock = threading.Lock()
        self._every_since: datetime | None = None  # every gateway asked for, at that moment
        self._since: dict[str, datetime] = {}  # a gateway asked for, at that moment
        self._failures: dict[str, tuple[int, datetime]] = {}  # gateway -> failures in a row, next try
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def request(self, gateway: str | None = None) -> None:
        """Publish a snapshot soon even if nothing changed: of ``gateway``, or of every gateway.

        Thread-safe and immediate: called from the lanes' network threads.
        """
        at = self._clock()
        with self._lock:
            if gateway is None:
                self._every_since = at
            else:
                self._since[gateway] = at
        self._wake.set()

    def run_once(self) -> list[Allowlist]:
        """Publish every snapshot that is due now; the ones published (for tests and logs)."""
        if not self._ready():
            return []  # the requests stay pending: connecting asks for every gateway anyway
        with self._lock:
            every_since, self._every_since = self._every_since, None
            since, self._since = self._since, {}
        now = self._clock()
        with self._sessions() as db:
            compiled = build_allowlists(db, self.site, now)
        for unknown in sorted(set(since) - set(compiled)):
            log.debug("no allowlist for %s: not a gateway of site %s", unknown, self.site)
        published = []
        for slug, found in compiled.items():
            asked = [moment for moment in (every_since, since.get(slug)) if moment is not None]
            failed = self._failures.get(slug)
            if failed is not None:
                if now < failed[1]:
                    continue
                asked.append(now)  # try again, even though the database says it was issued
            if not is_due(found, now, self._ttl, forced_since=max(asked, default=None)):
                continue
            with self._sessions() as db:
                allowlist = issue(db, self.site, found, now, self._ttl)
            if allowlist is None:
                continue  # another server issued a newer version first, and publishes it
            if self._send(allowlist):
                self._failures.pop(slug, None)
                published.append(allowlist)
            else:
                self._failed(slug, now)
        return published

    def _send(self, allowlist: Allowlist) -> bool:
        payload = encode(self._key.sign(allowlist))
        name = f"{self.site}/{allowlist.gateway}"
        if len(payload) > MAX_SIGNED_BYTES:
            log.error(
                "allowlist %d of %s is %d bytes, over the %d a gateway accepts: not published",
                allowlist.version,
                name,
                len(payload),
                MAX_SIGNED_BYTES,
            )
            return False
        if not self._publish(topic(self.site, allowlist.gateway, Channel.ALLOWLIST), payload):
            log.warning("could not publish allowlist %d of %s", allowlist.version, name)
            return False
        log.info(
            "published allowlist %d of %s: %d machine(s), %d badge(s), %d bytes, valid until %s",
            allowlist.version,
            name,
            len(allowlist.machines),
            len(allowlist.entries),
            len(payload),
            from_ms(allowlist.expires_at_ms).isoformat(timespec="seconds"),
        )
        return True

    def _failed(self, slug: str, now: datetime) -> None:
        count = self._failures.get(slug, (0, now))[0] + 1
        delay = min(timedelta(seconds=self._refresh_s) * 2**count, RETRY_MAX)
        self._failures[slug] = (count, now + delay)

    def _run(self) -> None:
        failing_since: float | None = None  # a database outage is logged once, not every refresh
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.exception("allowlist refresh failed; trying again every %s s", self._refresh_s)
            else:
                if failing_since is not None:
                    log.info("allowlist refresh works again after %.0f s", time.monotonic() - failing_since)
                    failing_since = None
            self._wake.wait(self._refresh_s)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="allowlist-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

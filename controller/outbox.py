"""What the gateway owes the server: its usage events, journaled, until each is acknowledged.

Every event is written to the journal first, then published. Events go out live
only once the journal's backlog has been replayed on this connection, so the
server always receives a gateway's events in seq order. An event still
unacknowledged after a while is published again, and the backlog (how many
events wait for their ack) is published in the gateway's retained status when
it lasts or when it drains. Only the gateway's worker uses an outbox.
"""

import logging
import time

from controller.actions import SessionEvent
from controller.journal import Journal
from controller.link import Link
from protocol.messages import EventAck, UsageEvent

log = logging.getLogger(__name__)

RESEND_BATCH = 500
"""At most this many unacknowledged events are published again at each backlog check."""


class Outbox:
    """The events of ``journal`` on their way to the server over ``link``."""

    def __init__(self, journal: Journal, link: Link) -> None:
        self.journal = journal
        self.link = link
        self.live = False
        """Events are published as they happen; False until the backlog is replayed."""
        self._backlog = journal.backlog()  # counted here, not queried per event
        self.link.backlog = self._backlog
        self._reported_backlog = self._backlog  # what the last status published said
        self._backlog_at_check = self._backlog
        self._sent_at: dict[int, float] = {}  # seq -> when it was last published (real time)

    def emit(self, event: SessionEvent, checkpoint: SessionEvent | None) -> None:
        """Journal ``event`` (with how its session would end now), and publish it if live."""
        usage = self.journal.append(event, checkpoint)
        self._count_backlog(+1)
        if self.live and self.link.connected:
            self._publish_event(usage)
        else:
            self.live = False  # stays in the journal, replayed on the next connection

    def acknowledged(self, ack: EventAck) -> None:
        if not ack.ok:
            log.error("the server refused event %d for good: %s", ack.seq, ack.error)
        self._sent_at.pop(ack.seq, None)
        if self.journal.ack(ack.seq):
            self._count_backlog(-1)

    def connected(self) -> None:
        """A new connection's birth status carried the backlog: it is the one reported now."""
        self._reported_backlog = self.link.backlog or 0

    def replay(self) -> bool:
        """Publish the journal's unacknowledged events in order; False if the link dropped meanwhile."""
        backlog = self.journal.unacked()
        for event in backlog:
            if not self._publish_event(event):
                return False  # the next connection replays
        if backlog:
            log.info(
                "replayed %d unacknowledged events (seq %d to %d)",
                len(backlog),
                backlog[0].seq,
                backlog[-1].seq,
            )
        return True

    def check(self, resend_after_s: float) -> None:
        """Every backlog check: publish a changed backlog, unless it is a passing one.

        An event waits for its ack for a few milliseconds; only a backlog found at two checks
        in a row is worth a status, so that a gateway whose events are acknowledged promptly
        publishes none, however busy it is.
        """
        backlog, stuck = self._backlog, self._backlog_at_check > 0
        self._backlog_at_check = backlog
        if backlog != self._reported_backlog and (backlog == 0 or stuck):
            self.report()
        if stuck and backlog and self.live and self.link.connected:
            self._resend(resend_after_s)

    @property
    def drained_unreported(self) -> bool:
        """The backlog is back to zero, and the last status still says otherwise."""
        return self._backlog == 0 and self._reported_backlog != 0

    def report(self) -> None:
        """Publish the retained ``online`` status with the backlog as it is now."""
        if self.link.connected and self.link.publish_status():
            self._reported_backlog = self._backlog

    def compact(self) -> None:
        try:
            removed = self.journal.compact()
        except Exception:
            log.exception("compacting the journal failed")
        else:
            if removed:
                log.debug("journal: %d acknowledged events removed", removed)

    def _count_backlog(self, change: int) -> None:
        self._backlog += change
        self.link.backlog = self._backlog

    def _publish_event(self, event: UsageEvent) -> bool:
        if not self.link.publish_event(event):
            return False
        self._sent_at[event.seq] = time.monotonic()
        return True

    def _resend(self, after_s: float) -> None:
        """Publish again the oldest events still unacknowledged ``after_s`` after they were last sent.

        The broker link stayed up, but the server may have lost what was sent meanwhile (it
        was down, or its connection was): without this, those events would wait for the
        gateway's next reconnection, which may be days away. The server applies each once.
        """
        now = time.monotonic()  # real time: what is waited for is the network and the server
        pending = [
            event
            for event in self.journal.unacked(limit=RESEND_BATCH)
            if now - self._sent_at.get(event.seq, float("-inf")) >= after_s
        ]
        sent = sum(1 for event in pending if self._publish_event(event))
        if sent:
            log.info("published again %d unacknowledged events (from seq %d)", sent, pending[0].seq)

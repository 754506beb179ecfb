"""One end of the bridge link, the same on both sides: sequence numbers, acknowledgement,
retransmission, and the rejection of duplicated, replayed and corrupt frames.

Stop-and-wait, each direction on its own (docs/firmware-protocol.md, "Reliability"):

- a sequenced message carries seq 1, 2, ... 255, 1, ... (0 is the handshake's); one is in
  flight at a time, sent again every ``ack_timeout_s`` until the peer's ACK with the same
  seq comes back, at most ``retries`` times more; then the owner is told (``on_give_up``)
  and says hello again;
- the receiver accepts only the seq after the last it accepted, acknowledges it once it
  has acted on it, acknowledges again (without acting) a repeat of the last one (its ACK
  was lost), and rejects anything else as replayed or out of order, with a log line and
  no ACK;
- a handshake resets both counters: the frame in flight, if any, is sent again under the
  new numbering, so nothing queued is lost.

The owner (the gateway's link, the simulated firmware) runs one thread that feeds
received bytes in (:meth:`Endpoint.feed`) and calls :meth:`Endpoint.tick` often; other
threads only :meth:`Endpoint.send`.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

from firmware_bridge import messages
from firmware_bridge.errors import BadMessage
from firmware_bridge.framing import Deframer, Packet, pack
from firmware_bridge.messages import HANDSHAKE, Kind, Message

log = logging.getLogger(__name__)


def after(seq: int) -> int:
    """The seq that follows ``seq``: 1 to 255, then 1 again (0 is the handshake's)."""
    return seq % 255 + 1


class Ticket:
    """A sequenced message on its way: wait for its ACK with :meth:`wait`."""

    def __init__(self, message: Message, coalesce: Hashable | None) -> None:
        self.message = message
        self.coalesce = coalesce
        self.done = threading.Event()
        self.ok = False
        self.error = ""

    def finish(self, ok: bool, error: str = "") -> None:
        self.ok, self.error = ok, error
        self.done.set()

    def wait(self, timeout: float) -> bool:
        """Whether the peer acknowledged it within ``timeout``."""
        return self.done.wait(timeout) and self.ok


class Endpoint:
    def __init__(
        self,
        name: str,
        write: Callable[[bytes], object],
        *,
        on_message: Callable[[Message], None],
        on_handshake: Callable[[Message], None],
        on_give_up: Callable[[Ticket], None],
        ack_timeout_s: float = 0.1,
        retries: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._write = write
        self._on_message = on_message
        self._on_handshake = on_handshake
        self._on_give_up = on_give_up
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self._clock = clock
        self.deframer = Deframer(name)
        self._lock = threading.Lock()
        self._queue: deque[Ticket] = deque()
        self._in_flight: Ticket | None = None
        self._in_flight_frame = b""
        self._sent_at = 0.0
        self._tries = 0
        self._next_out = 1
        self._last_in = 0
        self.held = False
        """While held (no handshake yet, or the link is down) nothing sequenced is sent."""
        self.heard_at: float | None = None
        """When the last valid frame came in."""
        self.outgoing_filter: Callable[[bytes], bytes] | None = None
        """For tests: sees (and may change or drop) every frame before it is written."""
        self.rejected = 0

    # Sending.

    def send(self, message: Message, *, coalesce: Hashable | None = None) -> Ticket:
        """Queue a sequenced message. With ``coalesce``, a queued message with the same key
        that has not been sent yet is replaced (a newer current reading, a newer signal)."""
        ticket = Ticket(message, coalesce)
        with self._lock:
            if coalesce is not None:
                for waiting in list(self._queue):
                    if waiting.coalesce == coalesce:
                        self._queue.remove(waiting)
                        waiting.finish(True, "replaced by a newer message")
            self._queue.append(ticket)
        return ticket

    def send_handshake(self, message: Message) -> None:
        """Send a handshake message (seq 0, never acknowledged) at once."""
        kind, payload = messages.encode(message)
        self._emit(pack(Packet(kind, 0, payload)))

    def _emit(self, frame: bytes) -> None:
        if self.outgoing_filter is not None:
            frame = self.outgoing_filter(frame)
        if frame:
            self._write(frame)

    def tick(self) -> None:
        """Send again what was not acknowledged in time, or send the next queued message."""
        now = self._clock()
        with self._lock:
            ticket = self._in_flight
            if ticket is not None and now - self._sent_at >= self.ack_timeout_s:
                if self._tries > self.retries:
                    self._in_flight = None
                    gave_up: Ticket | None = ticket
                else:
                    self._tries += 1
                    self._sent_at = now
                    frame = self._in_flight_frame
                    gave_up = None
                if gave_up is None:
                    log.debug("%s: no ACK for seq %d yet: sending it again", self.name, self._out_seq())
            else:
                gave_up = None
                frame = b""
            if self._in_flight is None and gave_up is None and self._queue and not self.held:
                ticket = self._queue.popleft()
                kind, payload = messages.encode(ticket.message)
                seq = self._next_out
                self._next_out = after(seq)
                self._in_flight, self._tries, self._sent_at = ticket, 1, now
                self._in_flight_frame = frame = pack(Packet(kind, seq, payload))
        if gave_up is not None:
            gave_up.finish(False, f"no ACK after {self.retries + 1} tries")
            self._on_give_up(gave_up)
        elif frame:
            self._emit(frame)

    def _out_seq(self) -> int:
        return (self._next_out - 2) % 255 + 1

    def hold(self) -> None:
        """Stop sending sequenced messages; the one in flight goes back to the head of the queue."""
        with self._lock:
            self.held = True
            if self._in_flight is not None:
                self._queue.appendleft(self._in_flight)
                self._in_flight = None

    def reset(self) -> None:
        """A handshake happened: both counters start again, and sending resumes."""
        with self._lock:
            if self._in_flight is not None:
                self._queue.appendleft(self._in_flight)
                self._in_flight = None
            self._next_out, self._last_in = 1, 0
            self.held = False

    def fail_all(self, error: str) -> None:
        """Give up everything queued (the link is closing)."""
        with self._lock:
            waiting = list(self._queue)
            self._queue.clear()
            if self._in_flight is not None:
                waiting.append(self._in_flight)
                self._in_flight = None
        for ticket in waiting:
            ticket.finish(False, error)

    def idle(self) -> bool:
        with self._lock:
            return self._in_flight is None and not self._queue

    # Receiving.

    def feed(self, data: bytes) -> None:
        for packet in self.deframer.feed(data):
            self.heard_at = self._clock()
            try:
                self._take(packet)
            except Exception:  # the owner's handler failed: the link must go on
                log.exception("%s: handling %s failed", self.name, packet)

    def _reject(self, what: str) -> None:
        self.rejected += 1
        log.warning("%s: rejected %s", self.name, what)

    def _take(self, packet: Packet) -> None:
        if packet.kind == Kind.ACK:
            self._acked(packet)
            return
        if (packet.seq == 0) != (packet.kind in HANDSHAKE):
            self._reject(f"a frame of type 0x{packet.kind:02X} with seq {packet.seq}")
            return
        if packet.seq == 0:
            try:
                message = messages.decode(packet.kind, packet.payload)
            except BadMessage as error:
                self._reject(f"a handshake frame: {error}")
                return
            self._on_handshake(message)
            return
        expected = after(self._last_in)
        if packet.seq == self._last_in:
            log.info(
                "%s: seq %d again (our ACK was lost): acknowledged again, not acted on", self.name, packet.seq
            )
            self._ack(packet.seq)
            return
        if packet.seq != expected:
            self._reject(f"a replayed or out-of-order frame: seq {packet.seq}, expected {expected}")
            return
        try:
            message = messages.decode(packet.kind, packet.payload)
        except BadMessage as error:
            # Well framed, so not noise: acknowledge it, or the peer would send it forever.
            self._reject(f"seq {packet.seq}: {error}")
        else:
            self._on_message(message)
        self._last_in = packet.seq
        self._ack(packet.seq)

    def _ack(self, seq: int) -> None:
        self._emit(pack(Packet(Kind.ACK, seq)))

    def _acked(self, packet: Packet) -> None:
        if packet.payload:
            self._reject(f"an ACK with a payload ({len(packet.payload)} bytes)")
            return
        with self._lock:
            ticket = self._in_flight
            if ticket is None or packet.seq != self._out_seq():
                log.debug("%s: a late or stray ACK for seq %d", self.name, packet.seq)
                return
            self._in_flight = None
        ticket.finish(True)

"""A TCP proxy between a gateway and its broker, which a test can cut and restore.

Three ways to cut, as networks fail:

* ``drop``: every connection is reset (RST) and new ones are reset as soon as they
  are accepted: a cable pulled out, a router rebooting. Both ends notice at once.
* ``refuse``: the connections that are open stay open, new ones are reset: a broker
  listener that went away behind a NAT that still holds the old flows.
* ``blackhole``: nothing is forwarded any more, but no connection is closed, and new
  ones are accepted and held: a Wi-Fi that stops carrying packets. Neither end learns
  anything until its keepalive expires; what was written meanwhile waits in the
  kernel's buffers and is delivered when the proxy is restored, as TCP retransmits
  after a short partition (unless an end gave up on the connection first).

It can also rework the MQTT stream from the client to the broker, packet by packet:
duplicate the PUBLISH packets of chosen topics (the copy has the DUP flag, as a
retransmission does), so every such QoS 1 message reaches the broker, and its
subscribers, twice; or hold them back and release them later, newest first and
several times over: reordered and duplicated deliveries, as a broker cluster or a
retransmission after a reconnect produces them.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import select
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

_CHUNK = 65536
_POLL_S = 0.05


class Mode(enum.Enum):
    OPEN = "open"
    DROP = "drop"
    REFUSE = "refuse"
    BLACKHOLE = "blackhole"


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN: the peer sees 'connection reset'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def publish_topic(packet: bytes) -> str | None:
    """The topic of an MQTT PUBLISH packet of QoS 1 or 2, else None."""
    first = packet[0]
    if first >> 4 != 3 or not (first >> 1) & 0x03:
        return None
    index = 1
    while packet[index] & 0x80:
        index += 1
    index += 1
    (topic_length,) = struct.unpack_from("!H", packet, index)
    return packet[index + 2 : index + 2 + topic_length].decode("utf-8", errors="replace")


def as_duplicate(packet: bytes) -> bytes:
    """The same PUBLISH with its DUP flag set, as a retransmission is sent."""
    return bytes([packet[0] | 0x08]) + packet[1:]


class PacketSplitter:
    """Cuts an MQTT byte stream into whole packets (the fixed header says each one's length)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        packets = []
        while (packet := self._next_packet()) is not None:
            packets.append(packet)
        return packets

    def _next_packet(self) -> bytes | None:
        buffer = self._buffer
        length, multiplier, index = 0, 1, 1
        while True:
            if index >= len(buffer):
                return None
            byte = buffer[index]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            index += 1
            if not byte & 0x80:
                break
            if index > 4:
                raise ValueError("malformed MQTT remaining length")
        total = index + length
        if len(buffer) < total:
            return None
        packet = bytes(buffer[:total])
        del buffer[:total]
        return packet


class _Pipe:
    """One proxied connection: two pumps, client to broker and broker to client."""

    def __init__(self, proxy: TcpProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # the pump and release() both write upstream
        self.held: list[bytes] = []
        self.thread = threading.Thread(target=self._run, name="proxy-pipe", daemon=True)

    def _run(self) -> None:
        try:
            # Held (not yet connected upstream) while the network is blackholed.
            while not self.proxy.flowing.wait(_POLL_S):
                if self.closed.is_set():
                    return
            if self.closed.is_set():
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.proxy.upstream_port), timeout=5)
            except OSError:
                self.reset()
                return
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self.closed.is_set():
                    _reset(upstream)
                    return
                self.upstream = upstream
            back = threading.Thread(target=self._pump, args=(upstream, self.client, False), daemon=True)
            back.start()
            self._pump(self.client, upstream, True)
            back.join()
        finally:
            self.close()
            self.proxy.forget(self)

    def _pump(self, source: socket.socket, target: socket.socket, up: bool) -> None:
        splitter = PacketSplitter()
        try:
            while not self.closed.is_set():
                if not self.proxy.flowing.wait(_POLL_S):
                    continue  # blackholed: leave the bytes in the kernel's buffers
                readable, _, _ = select.select([source], [], [], _POLL_S)
                if not readable:
                    continue
                data = source.recv(_CHUNK)
                if not data:
                    return
                if up:  # cut into packets, so that a filter set at any moment sees whole ones
                    data = self._filter(splitter.feed(data))
                if data:
                    with self._send_lock:
                        target.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            self.close()

    def _filter(self, packets: list[bytes]) -> bytes:
        out = bytearray()
        proxy = self.proxy
        for packet in packets:
            topic = publish_topic(packet)
            if topic is not None and proxy.hold_topics is not None and proxy.hold_topics(topic):
                with self._lock:
                    self.held.append(packet)
                proxy.count("held")
                continue
            out += packet
            if topic is not None and proxy.duplicate_topics is not None and proxy.duplicate_topics(topic):
                out += as_duplicate(packet)
                proxy.count("duplicated")
        return bytes(out)

    def release(self, reverse: bool, copies: int) -> int:
        """Send the held PUBLISHes on, newest first when ``reverse``, each ``copies`` times."""
        with self._lock:
            held, self.held = self.held, []
            upstream = self.upstream
        if reverse:
            held.reverse()
        if upstream is None or self.closed.is_set():
            return 0
        data = b"".join(packet if n == 0 else as_duplicate(packet) for packet in held for n in range(copies))
        try:
            with self._send_lock:
                upstream.sendall(data)
        except OSError:
            return 0
        return len(held)

    def close(self) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
            for sock in (self.client, self.upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    with contextlib.suppress(OSError):
                        sock.close()

    def reset(self) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
            _reset(self.client)
            if self.upstream is not None:
                _reset(self.upstream)


class TcpProxy:
    """Listens on a free loopback port and forwards to ``127.0.0.1:upstream_port``.

    ``duplicate_topics``: PUBLISH packets (QoS 1) on topics it accepts reach the broker
    twice. ``hold_topics``: PUBLISH packets on topics it accepts are held back until
    :meth:`release`, which can send them in reverse order and several times. Both are
    attributes: set them at any moment (on new bytes after that).
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        duplicate_topics: Callable[[str], bool] | None = None,
        hold_topics: Callable[[str], bool] | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.duplicate_topics = duplicate_topics
        self.hold_topics = hold_topics
        self.flowing = threading.Event()
        self.flowing.set()
        self.mode = Mode.OPEN
        self.counts: dict[str, int] = {"accepted": 0, "reset": 0, "duplicated": 0, "held": 0}
        self._pipes: set[_Pipe] = set()
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open now (held ones included)."""
        with self._lock:
            return sum(1 for pipe in self._pipes if not pipe.closed.is_set())

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def _accept(self) -> None:
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._listener], [], [], _POLL_S)
            if not readable:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self.mode in (Mode.DROP, Mode.REFUSE) or self._stopping.is_set():
                    _reset(client)
                    self.counts["reset"] += 1
                    continue
                self.counts["accepted"] += 1
                pipe = _Pipe(self, client)
                self._pipes.add(pipe)
            pipe.thread.start()

    def forget(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)

    def cut(self, mode: Mode | str = Mode.DROP) -> None:
        """Cut the network the way ``mode`` says, until :meth:`restore`."""
        mode = Mode(mode)
        if mode is Mode.OPEN:
            raise ValueError("cut with drop, refuse or blackhole; restore() opens")
        with self._lock:
            self.mode = mode
            if mode is Mode.BLACKHOLE:
                self.flowing.clear()
            pipes = list(self._pipes) if mode is Mode.DROP else []
        for pipe in pipes:
            pipe.reset()
        log.info("proxy %d: network cut (%s)", self.port, mode.value)

    def restore(self) -> None:
        with self._lock:
            self.mode = Mode.OPEN
            self.flowing.set()
        log.info("proxy %d: network restored", self.port)

    def release(self, *, reverse: bool = False, copies: int = 1) -> int:
        """Send the held PUBLISHes on their connections (those still open); returns how many."""
        with self._lock:
            pipes = list(self._pipes)
        return sum(pipe.release(reverse, copies) for pipe in pipes)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.flowing.set()  # release held pipes so that they see they are closed
        with self._lock:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.reset()
        for pipe in pipes:
            pipe.thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

"""The simulated gateways of ``bench/load.py``: one process plays many gateways on one MQTT connection.

A real gateway is a connection of its own; a thousand paho clients (a thousand network
threads) would measure the load generator rather than the server, on 2 cores. So each worker
process publishes for its share of the gateway ids, each a distinct gateway registered in the
database, on the gateways' own topics, and subscribes to each one's reply or ack topic. The
server cannot tell the difference: it reads the gateway from the topic.

Both loads are closed loops with a bounded number of messages in flight: a reply (or an ack)
lets the next request (or event) go. Payloads are written by hand (checked against the
contract's decoder at start) and replies read with :func:`json.loads`, to keep the generator's
own cost per message small.
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

import paho.mqtt.client as paho

from protocol.messages import AccessRequest, GatewayState, GatewayStatus, UsageEvent, decode, encode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, topic

REQUEST_TTL_MS = 60_000
"""Longer than any queue the bench builds: a request the server drops as expired would count as
unanswered. (A real gateway gives up after 500 ms and decides from its allowlist.)"""

DRAIN_S = 30.0
QUIET_S = 1.0  # after the last answer, how long a duplicate answer is waited for


def machine_slug(gateway: str, number: int) -> str:
    return f"{gateway}-m{number}"


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    run: str
    """A tag in request and session ids, unique per run: the database is checked by it."""
    mode: str  # "decisions" or "events"
    broker_url: str
    site: str
    gateways: tuple[str, ...]
    machines_per_gateway: int
    badges: tuple[str, ...]
    in_flight: int
    warmup_s: float
    seconds: float
    duplicates: float = 0.0
    """Events only: the share published twice in a row (the copies reach two servers at once)."""
    replays: float = 0.0
    """Events only: the share followed by a replay of an event acknowledged earlier."""
    seed: int = 1


@dataclass
class WorkerResult:
    index: int
    sent: int = 0
    """Requests, or event publications (copies included)."""
    answered: int = 0
    """Replies, or acks, that matched something outstanding."""
    unique: int = 0
    """Distinct requests answered, or distinct events acknowledged."""
    in_window: int = 0
    """Distinct requests answered, or events first acknowledged, within the measured window."""
    duplicates: int = 0
    """A second reply to an answered request, or an ack beyond the copies published."""
    unanswered: int = 0
    refused_acks: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    sessions_started: int = 0
    sessions_ended: int = 0
    running_ms: int = 0
    """The sum over sessions of the last running total published: what the database must hold."""
    error: str = ""


class _Load:
    """What both loads share: the connection, the window, the in-flight bound, the drain."""

    def __init__(self, spec: WorkerSpec, reply_channel: Channel) -> None:
        self.spec = spec
        self.result = WorkerResult(spec.index)
        self.lock = threading.RLock()
        self.rng = random.Random(spec.seed * 1000 + spec.index)
        self.window = (float("inf"), float("inf"))
        self.stop_at = float("inf")
        self.subscribed = threading.Event()
        url = BrokerURL.parse(spec.broker_url)
        self.client = make_client(url, f"load-{spec.run}-{spec.index}")
        self.client.max_inflight_messages_set(0)  # no limit in paho: the bound is the closed loop's
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self._filters = [(topic(spec.site, gateway, reply_channel), 1) for gateway in spec.gateways]
        self.client.connect(url.host, url.port, keepalive=60)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(self._filters)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        raise NotImplementedError

    def announce(self, boot: int) -> None:
        """Each gateway says it is online (retained), as a gateway does after connecting."""
        now_ms = time.time_ns() // 1_000_000
        for gateway in self.spec.gateways:
            status = GatewayStatus(state=GatewayState.ONLINE, boot=boot, at_ms=now_ms, software="load")
            self.client.publish(
                topic(self.spec.site, gateway, Channel.STATUS), encode(status), 1, retain=True
            )

    def outstanding(self) -> int:
        raise NotImplementedError

    def send(self) -> None:
        raise NotImplementedError

    def run(self, start_at: float) -> WorkerResult:
        self.window = (start_at + self.spec.warmup_s, start_at + self.spec.warmup_s + self.spec.seconds)
        self.stop_at = self.window[1]
        time.sleep(max(0.0, start_at - time.monotonic()))
        for _ in range(self.spec.in_flight):
            self.send()
        time.sleep(max(0.0, self.stop_at - time.monotonic()))
        deadline = time.monotonic() + DRAIN_S
        while self.outstanding() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(QUIET_S)
        self.client.disconnect()
        self.client.loop_stop()
        with self.lock:
            self.result.unanswered = self.outstanding()
            return self.result


class Decisions(_Load):
    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec, Channel.ACCESS_REPLY)
        self.pending: dict[str, float] = {}
        self.answered: set[str] = set()
        self.numbers = itertools.count()
        self.request_topics = {g: topic(spec.site, g, Channel.ACCESS_REQUEST) for g in spec.gateways}
        # The contract's own decoder accepts what this worker writes by hand.
        decode(AccessRequest, self.payload("r-check", "gw-check-m1", spec.badges[0], 1))

    @staticmethod
    def payload(request_id: str, machine: str, badge: str, now_ms: int) -> bytes:
        return (
            f'{{"request_id":"{request_id}","machine":"{machine}","badge":"{badge}",'
            f'"sent_at_ms":{now_ms},"expires_at_ms":{now_ms + REQUEST_TTL_MS}}}'
        ).encode()

    def outstanding(self) -> int:
        with self.lock:
            return len(self.pending)

    def send(self) -> None:
        now = time.monotonic()
        if now >= self.stop_at:
            return
        with self.lock:
            request_id = f"{self.spec.run}-{self.spec.index}-{next(self.numbers)}"
            gateway = self.rng.choice(self.spec.gateways)
            machine = machine_slug(gateway, self.rng.randrange(self.spec.machines_per_gateway) + 1)
            badge = self.rng.choice(self.spec.badges)
            self.pending[request_id] = now
            self.result.sent += 1
        payload = self.payload(request_id, machine, badge, time.time_ns() // 1_000_000)
        self.client.publish(self.request_topics[gateway], payload, qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        received = time.monotonic()
        reply = json.loads(message.payload)
        request_id = reply["request_id"]
        with self.lock:
            sent = self.pending.pop(request_id, None)
            if sent is None:
                self.result.duplicates += request_id in self.answered
                return
            self.answered.add(request_id)
            self.result.answered += 1
            self.result.unique += 1
            outcomes = self.result.outcomes
            outcomes[reply["reason"]] = outcomes.get(reply["reason"], 0) + 1
            start, end = self.window
            if start <= received <= end:
                self.result.in_window += 1
                if sent >= start:
                    self.result.latencies_ms.append((received - sent) * 1000)
        self.send()


@dataclass
class _Outstanding:
    copies: int
    sent: float
    payload: bytes


class Events(_Load):
    """Each gateway runs sessions of four events: started, running, stopped, ended."""

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec, Channel.EVENTS_ACK)
        self.pending: dict[tuple[str, int], _Outstanding] = {}
        self.acked: set[tuple[str, int]] = set()
        self.recent: collections.deque[tuple[str, int, bytes]] = collections.deque(maxlen=1000)
        self.event_topics = {g: topic(spec.site, g, Channel.EVENTS) for g in spec.gateways}
        self.turn = itertools.cycle(spec.gateways)
        self.seq = dict.fromkeys(spec.gateways, 0)
        self.sessions = dict.fromkeys(spec.gateways, 0)
        self.running: dict[str, int] = {}  # session id -> last running total published
        decode(UsageEvent, self.event("gw-check", 4, 0)[2])

    def event(self, gateway: str, seq: int, now_ms: int) -> tuple[str, int, bytes]:
        """The event ``seq`` of ``gateway``: (session id, running total, payload)."""
        number, step = divmod(seq - 1, 4)
        session_id = f"{self.spec.run}-{gateway}-{number}"
        machine = machine_slug(gateway, number % self.spec.machines_per_gateway + 1)
        running = 1000 * (number % 5 + 1)
        fields = {
            0: f'"kind":"session_started","badge":"{self.spec.badges[number % len(self.spec.badges)]}",'
            '"decided_by":"server"',
            1: '"kind":"running_started","unlocked_ms":500,"idle_ms":500',
            2: f'"kind":"running_stopped","unlocked_ms":{500 + running},"running_ms":{running},"idle_ms":500',
            3: f'"kind":"session_ended","unlocked_ms":{1000 + running},"running_ms":{running},'
            '"idle_ms":1000,"end_reason":"badge_out"',
        }[step]
        payload = (
            f'{{"seq":{seq},"session_id":"{session_id}","machine":"{machine}","at_ms":{now_ms + step},'
            f"{fields}}}"
        ).encode()
        return session_id, running if step >= 2 else 0, payload

    def outstanding(self) -> int:
        with self.lock:
            return sum(entry.copies for entry in self.pending.values())

    def send(self) -> None:
        now = time.monotonic()
        if now >= self.stop_at:
            return
        replay = None
        with self.lock:
            gateway = next(self.turn)
            self.seq[gateway] += 1
            seq = self.seq[gateway]
            session_id, running, payload = self.event(gateway, seq, time.time_ns() // 1_000_000)
            step = (seq - 1) % 4
            self.result.sessions_started += step == 0
            self.result.sessions_ended += step == 3
            self.running[session_id] = max(running, self.running.get(session_id, 0))
            copies = 2 if self.rng.random() < self.spec.duplicates else 1
            self.pending[(gateway, seq)] = _Outstanding(copies, now, payload)
            self.result.sent += copies
            if self.recent and self.rng.random() < self.spec.replays:
                replay = self.recent[self.rng.randrange(len(self.recent))]
                key = (replay[0], replay[1])
                entry = self.pending.get(key)
                if entry is None:
                    self.pending[key] = _Outstanding(1, now, replay[2])
                else:
                    entry.copies += 1
                self.result.sent += 1
        name = self.event_topics[gateway]
        for _ in range(copies):
            self.client.publish(name, payload, qos=1)
        if replay is not None:
            self.client.publish(self.event_topics[replay[0]], replay[2], qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        received = time.monotonic()
        ack = json.loads(message.payload)
        key = (message.topic.split("/")[3], ack["seq"])
        send_next = False
        with self.lock:
            entry = self.pending.get(key)
            if entry is None:
                self.result.duplicates += 1
                return
            entry.copies -= 1
            if entry.copies == 0:
                del self.pending[key]
            self.result.answered += 1
            self.result.refused_acks += not ack.get("ok", True)
            if key not in self.acked:
                self.acked.add(key)
                self.result.unique += 1
                send_next = True  # a replayed copy's ack lets nothing new go
                start, end = self.window
                if start <= received <= end:
                    self.result.in_window += 1
                    if entry.sent >= start:
                        self.result.latencies_ms.append((received - entry.sent) * 1000)
                self.recent.append((*key, entry.payload))
        if send_next:
            self.send()

    def run(self, start_at: float) -> WorkerResult:
        result = super().run(start_at)
        result.running_ms = sum(self.running.values())
        return result


def worker_main(
    spec: WorkerSpec,
    *,
    ready: Event,
    go: Event,
    start_at: Synchronized,  # type: ignore[type-arg]  # a multiprocessing Value("d")
    results: Queue[dict[str, Any]],
    boot: int,
) -> None:
    """A worker process: connect, announce the gateways, wait for the start, run, report."""
    try:
        load: _Load = Decisions(spec) if spec.mode == "decisions" else Events(spec)
        if not load.subscribed.wait(30):
            raise RuntimeError("could not subscribe")
        load.announce(boot)
        ready.set()
        if not go.wait(120):
            raise RuntimeError("never told to start")
        results.put(asdict(load.run(float(start_at.value))))
    except Exception as error:  # reported by the parent, which fails the run
        results.put(asdict(WorkerResult(spec.index, error=f"{type(error).__name__}: {error}")))

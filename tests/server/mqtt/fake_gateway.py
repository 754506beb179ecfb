"""A paho client playing a gateway against the real broker, for the server's MQTT tests."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol.messages import (
    AccessReply,
    AccessRequest,
    CertificationLevel,
    CertifyReply,
    CertifyRequest,
    EventAck,
    GatewayStatus,
    Message,
    UsageEvent,
    decode,
    encode,
)
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import QOS, RETAINED, Channel, topic

TIMEOUT_S = 10.0

_numbers = itertools.count(1)


class FakeGateway:
    """Publishes as gateway ``slug`` of ``site`` and collects what the server sends back."""

    def __init__(self, broker_url: str, site: str, slug: str) -> None:
        self.site, self.slug = site, slug
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._subscribed = threading.Event()
        url = BrokerURL.parse(broker_url)
        self.client = make_client(url, f"fake-{site}-{slug}-{next(_numbers)}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(url.host, url.port)
        self.client.loop_start()
        if not self._subscribed.wait(TIMEOUT_S):
            raise TimeoutError("the fake gateway could not subscribe")

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, code: ReasonCode, props: Any
    ) -> None:
        client.subscribe(
            [
                (topic(self.site, self.slug, channel), 1)
                for channel in (Channel.ACCESS_REPLY, Channel.EVENTS_ACK, Channel.CERTIFY_REPLY)
            ]
        )

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Properties | None
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.received.put((message.topic, bytes(message.payload)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # Sending

    def publish_raw(self, topic_name: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic_name, payload, qos=qos, retain=retain).wait_for_publish(TIMEOUT_S)

    def send(self, channel: Channel, message: Message) -> None:
        self.publish_raw(
            topic(self.site, self.slug, channel),
            encode(message),
            qos=QOS[channel],
            retain=channel in RETAINED,
        )

    def request(
        self,
        machine: str,
        badge: str,
        *,
        request_id: str | None = None,
        expires_in_ms: int = 2000,
        supervisor_badge: str | None = None,
    ) -> str:
        request_id = request_id or f"req-{next(_numbers)}"
        now = time.time_ns() // 1_000_000
        self.send(
            Channel.ACCESS_REQUEST,
            AccessRequest(
                request_id=request_id,
                machine=machine,
                badge=badge,
                sent_at_ms=now,
                expires_at_ms=now + expires_in_ms,
                supervisor_badge=supervisor_badge,
            ),
        )
        return request_id

    def certify(
        self,
        machine: str,
        trainer_badge: str,
        member_badge: str,
        *,
        level: CertificationLevel = CertificationLevel.AUTONOMOUS,
        expires_in_ms: int = 2000,
    ) -> str:
        """The trainer's badge, the member's, and the trainer's confirming tap: one request."""
        request_id = f"cert-{next(_numbers)}"
        now = time.time_ns() // 1_000_000
        self.send(
            Channel.CERTIFY_REQUEST,
            CertifyRequest(
                request_id=request_id,
                machine=machine,
                trainer_badge=trainer_badge,
                member_badge=member_badge,
                level=level,
                sent_at_ms=now,
                expires_at_ms=now + expires_in_ms,
            ),
        )
        return request_id

    def status(self, status: GatewayStatus) -> None:
        self.send(Channel.STATUS, status)

    def event(self, event: UsageEvent) -> None:
        self.send(Channel.EVENTS, event)

    # Receiving

    def next(self) -> tuple[str, bytes]:
        """The next message from the server; fails after a timeout."""
        try:
            return self.received.get(timeout=TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"no message from the server within {TIMEOUT_S} s") from None

    def next_reply(self) -> AccessReply:
        topic_name, payload = self.next()
        assert topic_name == topic(self.site, self.slug, Channel.ACCESS_REPLY), topic_name
        return decode(AccessReply, payload)

    def next_ack(self) -> EventAck:
        topic_name, payload = self.next()
        assert topic_name == topic(self.site, self.slug, Channel.EVENTS_ACK), topic_name
        return decode(EventAck, payload)

    def next_certify_reply(self) -> CertifyReply:
        topic_name, payload = self.next()
        assert topic_name == topic(self.site, self.slug, Channel.CERTIFY_REPLY), topic_name
        return decode(CertifyReply, payload)

    def ask(self, machine: str, badge: str, *, supervisor_badge: str | None = None) -> AccessReply:
        """Request and wait for the answer, which must be the very next message."""
        request_id = self.request(machine, badge, supervisor_badge=supervisor_badge)
        reply = self.next_reply()
        assert reply.request_id == request_id
        return reply

    def ask_certify(
        self, machine: str, trainer_badge: str, member_badge: str, **options: Any
    ) -> CertifyReply:
        request_id = self.certify(machine, trainer_badge, member_badge, **options)
        reply = self.next_certify_reply()
        assert reply.request_id == request_id
        return reply

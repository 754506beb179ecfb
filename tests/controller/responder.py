"""A stand-in for the server, on a real broker: it answers access requests and
certifications, acknowledges events, and records everything a site's gateways publish.

:class:`TrainingRules` plays the server's rules of supervision and
certification at the machine, so that the gateway's side of them can be
tested through the broker; the real server's rules are tested in tests/server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
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
    MachineState,
    Message,
    Reason,
    Telemetry,
    UsageEvent,
    decode,
    encode,
)
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, parse_topic, subscription, topic

MEMBER_BADGE = "04A1B2C3"
MEMBER_ID = 7
TRAINER_BADGE = "7EAC4E55"
TRAINER_ID = 3
SUPERVISED_BADGE = "5E1F0001"
SUPERVISED_ID = 11
TRAINEE_BADGE = "0E1F0002"
TRAINEE_ID = 12
SKILL = "industrial-sewing"


@dataclass
class Seen:
    requests: list[AccessRequest] = field(default_factory=list)
    certify_requests: list[CertifyRequest] = field(default_factory=list)
    events: list[UsageEvent] = field(default_factory=list)
    statuses: list[GatewayStatus] = field(default_factory=list)
    states: list[MachineState] = field(default_factory=list)
    telemetry: list[Telemetry] = field(default_factory=list)


def grant_member(request: AccessRequest) -> AccessReply | None:
    """The default policy: one known member, everyone else unknown."""
    granted = request.badge == MEMBER_BADGE
    return AccessReply(
        request_id=request.request_id,
        machine=request.machine,
        badge=request.badge,
        granted=granted,
        reason=Reason.GRANTED if granted else Reason.UNKNOWN_BADGE,
        member_id=MEMBER_ID if granted else None,
    )


def refuse_certification(request: CertifyRequest) -> CertifyReply | None:
    """The default: nobody certifies here."""
    return CertifyReply(
        request_id=request.request_id,
        machine=request.machine,
        member_badge=request.member_badge,
        certified=False,
        reason=Reason.NOT_A_TRAINER,
    )


class TrainingRules:
    """The server's rules of issue 3, as the gateway relies on them, for one skill on every machine.

    A trainer is granted with ``trainer: true``; a member certified ``supervised`` is
    granted only with a ``supervisor_badge`` of a trainer granted on the same
    machine within ``window_ms`` before (by the requests' ``sent_at_ms``), and then
    with that trainer as ``supervisor_id``; a trainer certifies anyone but
    themself. Called on the responder's network thread only.
    """

    def __init__(self, window_ms: int = 300_000) -> None:
        self.window_ms = window_ms
        self.members = {
            MEMBER_BADGE: MEMBER_ID,
            TRAINER_BADGE: TRAINER_ID,
            SUPERVISED_BADGE: SUPERVISED_ID,
            TRAINEE_BADGE: TRAINEE_ID,
        }
        self.levels: dict[str, CertificationLevel] = {
            MEMBER_BADGE: CertificationLevel.AUTONOMOUS,
            TRAINER_BADGE: CertificationLevel.TRAINER,
            SUPERVISED_BADGE: CertificationLevel.SUPERVISED,
        }
        self.trainer_granted_at: dict[tuple[str, str], int] = {}
        """(machine, trainer badge) -> when that trainer was last granted there."""

    def decide(self, request: AccessRequest) -> AccessReply | None:
        member_id = self.members.get(request.badge)
        level = self.levels.get(request.badge)
        reason, trainer, supervisor_id = Reason.GRANTED, False, None
        if member_id is None:
            reason = Reason.UNKNOWN_BADGE
        elif level is None:
            reason = Reason.NOT_CERTIFIED
        elif level is CertificationLevel.TRAINER:
            trainer = True
            self.trainer_granted_at[(request.machine, request.badge)] = request.sent_at_ms
        elif level is CertificationLevel.SUPERVISED:
            since = self.trainer_granted_at.get((request.machine, request.supervisor_badge or ""))
            if since is None or request.sent_at_ms - since > self.window_ms:
                reason = Reason.SUPERVISION_REQUIRED
            else:
                supervisor_id = self.members[str(request.supervisor_badge)]
        granted = reason is Reason.GRANTED
        return AccessReply(
            request_id=request.request_id,
            machine=request.machine,
            badge=request.badge,
            granted=granted,
            reason=reason,
            member_id=member_id,
            trainer=trainer,
            supervisor_id=supervisor_id,
        )

    def certify(self, request: CertifyRequest) -> CertifyReply | None:
        member_id = self.members.get(request.member_badge)
        if self.levels.get(request.trainer_badge) is not CertificationLevel.TRAINER:
            reason = Reason.NOT_A_TRAINER
        elif request.trainer_badge == request.member_badge:
            reason = Reason.SELF_CERTIFICATION
        elif member_id is None:
            reason = Reason.UNKNOWN_BADGE
        else:
            reason = Reason.GRANTED
            self.levels[request.member_badge] = request.level
        certified = reason is Reason.GRANTED
        return CertifyReply(
            request_id=request.request_id,
            machine=request.machine,
            member_badge=request.member_badge,
            certified=certified,
            reason=reason,
            member_id=member_id,
            skills=[SKILL] if certified else [],
        )


class Responder:
    """Plays the server for one site. ``decide`` (or ``decide_certify``) returning None leaves
    a request unanswered."""

    _count = 0

    def __init__(
        self,
        broker_url: str,
        site: str,
        *,
        decide: Callable[[AccessRequest], AccessReply | None] = grant_member,
        decide_certify: Callable[[CertifyRequest], CertifyReply | None] = refuse_certification,
        ack_events: bool = True,
    ) -> None:
        self.site = site
        self.decide = decide
        self.decide_certify = decide_certify
        self.ack_events = ack_events
        self.seen = Seen()
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        Responder._count += 1
        url = BrokerURL.parse(broker_url)
        self._client = make_client(url, f"responder-{site}-{Responder._count}")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect(url.host, url.port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise RuntimeError("the responder could not subscribe")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        channels = (
            Channel.ACCESS_REQUEST,
            Channel.CERTIFY_REQUEST,
            Channel.EVENTS,
            Channel.STATUS,
            Channel.MACHINE_STATE,
            Channel.TELEMETRY,
        )
        client.subscribe([(subscription(channel, self.site), 1) for channel in channels])

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Properties | None
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        address = parse_topic(message.topic)
        reply: Message | None = None
        with self._changed:
            if address.channel is Channel.ACCESS_REQUEST:
                request = decode(AccessRequest, message.payload)
                self.seen.requests.append(request)
                reply = self.decide(request)
                channel = Channel.ACCESS_REPLY
            elif address.channel is Channel.CERTIFY_REQUEST:
                certify = decode(CertifyRequest, message.payload)
                self.seen.certify_requests.append(certify)
                reply = self.decide_certify(certify)
                channel = Channel.CERTIFY_REPLY
            elif address.channel is Channel.EVENTS:
                event = decode(UsageEvent, message.payload)
                self.seen.events.append(event)
                reply = EventAck(seq=event.seq) if self.ack_events else None
                channel = Channel.EVENTS_ACK
            elif address.channel is Channel.STATUS:
                self.seen.statuses.append(decode(GatewayStatus, message.payload))
            elif address.channel is Channel.MACHINE_STATE:
                self.seen.states.append(decode(MachineState, message.payload))
            elif address.channel is Channel.TELEMETRY:
                self.seen.telemetry.append(decode(Telemetry, message.payload))
            self._changed.notify_all()
        if reply is not None:
            client.publish(topic(self.site, address.gateway, channel), encode(reply), qos=1)

    def play(self, rules: TrainingRules) -> TrainingRules:
        """Decide requests and certifications by ``rules`` from now on."""
        self.decide, self.decide_certify = rules.decide, rules.certify
        return rules

    def wait_for(self, predicate: Callable[[Seen], bool], timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.seen), timeout)

    def send(self, gateway: str, channel: Channel, payload: bytes | Message, *, retain: bool = False) -> None:
        """Publish to a gateway, as the server would (or as a broken peer would)."""
        data = payload if isinstance(payload, bytes) else encode(payload)
        self._client.publish(topic(self.site, gateway, channel), data, qos=1, retain=retain).wait_for_publish(
            5
        )

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def retained_status(broker_url: str, site: str, gateway: str, timeout: float = 10.0) -> GatewayStatus | None:
    """What a newcomer reads on a gateway's status topic: the retained message."""
    url = BrokerURL.parse(broker_url)
    got: list[GatewayStatus] = []
    arrived = threading.Event()
    client = make_client(url, f"reader-{site}-{gateway}")

    def on_connect(c: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        c.subscribe(topic(site, gateway, Channel.STATUS), 1)

    def on_message(c: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.retain:
            got.append(decode(GatewayStatus, message.payload))
            arrived.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(url.host, url.port)
    client.loop_start()
    try:
        arrived.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[-1] if got else None

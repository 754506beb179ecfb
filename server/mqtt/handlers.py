"""What the server does with each message a gateway publishes.

:class:`Handlers` turns one incoming (topic, payload) into at most one message
to send back, with no broker in sight, so it can be tested on its own and
:class:`~server.mqtt.service.MqttService` stays a thin shell around paho.
Anything malformed is logged with its topic and answered when the answer is
useful to the gateway; it changes nothing else.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.orm import Session

from protocol.errors import BadPayload, BadTopic
from protocol.ids import Ident
from protocol.messages import (
    MAX_PAYLOAD_BYTES,
    AccessReply,
    AccessRequest,
    BadgeUid,
    CertifyReply,
    CertifyRequest,
    Counter,
    EventAck,
    GatewayState,
    GatewayStatus,
    MachineState,
    Reason,
    Telemetry,
    Token,
    UsageEvent,
    decode,
    encode,
)
from protocol.topics import QOS, Channel, TopicAddress, parse_topic, topic
from server.access import DEFAULT_SECOND_FACTOR_WINDOW, DEFAULT_SUPERVISION_WINDOW, decide
from server.clock import Clock, to_ms
from server.clocks import DEFAULT_TOLERANCE_MS, link_of, record_offset
from server.db import SessionFactory
from server.gateway_status import StatusOutcome, record_status
from server.live import LiveWorkshop
from server.models import GatewayState as KnownState
from server.observability import ServerMetrics
from server.telemetry import MachineSample, TelemetryWriter
from server.training.machine import certify_at_machine
from server.usage import ingest

log = logging.getLogger(__name__)

PLACEHOLDER_BADGE = "0000"
"""Sent back in a ``bad_request`` reply when the request had no readable badge:
AccessReply requires one, and the gateway matches replies by ``request_id``."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish in answer; never retained."""

    topic: str
    payload: bytes
    qos: int


class Handlers:
    """Reads the gateways of ``site``; each message gets a database session of its own."""

    def __init__(
        self,
        site: str,
        session_factory: SessionFactory,
        clock: Clock,
        request_clock_tolerance_ms: int,
        *,
        metrics: ServerMetrics | None = None,
        telemetry: TelemetryWriter | None = None,
        supervision_window: timedelta = DEFAULT_SUPERVISION_WINDOW,
        second_factor_window: timedelta = DEFAULT_SECOND_FACTOR_WINDOW,
        clock_tolerance_ms: int = DEFAULT_TOLERANCE_MS,
        on_birth: Callable[[str], None] | None = None,
        live: LiveWorkshop | None = None,
    ) -> None:
        """``on_birth(gateway)`` is called when a gateway comes online (a new boot, or back
        from lost or offline), on the ingest lane's thread: it must return at once. ``live``
        receives each machine's state (a new one if not given): what the web's live view shows."""
        self.site = site
        self._sessions = session_factory
        self._clock = clock
        self._tolerance_ms = request_clock_tolerance_ms
        self._supervision_window = supervision_window
        self._second_factor_window = second_factor_window
        self.metrics = metrics or ServerMetrics()
        self._telemetry = telemetry  # None: telemetry is checked, and not kept
        self._clock_tolerance_ms = clock_tolerance_ms
        self._on_birth = on_birth
        self.live = live or LiveWorkshop()

    def handle(self, topic_name: str, payload: bytes, *, retained: bool = False) -> Outgoing | None:
        """The answer to one message, if any. Raises only on a failure of the server itself.

        ``retained``: the broker kept the message and delivered it on subscribing, so it
        may be old (a gateway's status only).
        """
        try:
            address = parse_topic(topic_name)
        except BadTopic as error:
            log.warning("ignored message on bad topic %r: %s", topic_name, error)
            return None
        if address.site != self.site:
            log.warning("ignored message for site %s on %s", address.site, topic_name)
            return None
        if address.channel is Channel.ACCESS_REQUEST:
            return self.access_request(address, topic_name, payload)
        if address.channel is Channel.CERTIFY_REQUEST:
            return self.certify_request(address, topic_name, payload)
        if address.channel is Channel.EVENTS:
            return self.usage_event(address, topic_name, payload)
        if address.channel is Channel.STATUS:
            self.status(address, topic_name, payload, retained=retained)
        elif address.channel is Channel.MACHINE_STATE:
            self.machine_state(address, topic_name, payload)
        elif address.channel is Channel.TELEMETRY:
            self.telemetry(address, topic_name, payload)
        else:
            log.debug("ignored message on %s: not a channel the server reads", topic_name)
        return None

    def access_request(self, address: TopicAddress, topic_name: str, payload: bytes) -> Outgoing | None:
        reply_topic = topic(self.site, address.gateway, Channel.ACCESS_REPLY)
        try:
            request = decode(AccessRequest, payload)
        except BadPayload as error:
            log.warning("bad access request on %s: %s", topic_name, error)
            reply = _bad_request_reply(payload, str(error))
            if reply is None:
                return None
            self.metrics.decided(reply.reason.value)
            return Outgoing(reply_topic, encode(reply), QOS[Channel.ACCESS_REPLY])
        now = self._clock()
        if request.expires_at_ms + self._tolerance_ms < to_ms(now):
            # The gateway stopped waiting long ago and decided from its allowlist.
            log.info(
                "dropped access request %s on %s: expired %d ms ago",
                request.request_id,
                topic_name,
                to_ms(now) - request.expires_at_ms,
            )
            self.metrics.decided(Reason.REQUEST_EXPIRED.value)
            return None
        with self._sessions() as db:
            reply = decide(
                db,
                self.site,
                address.gateway,
                request,
                now,
                supervision_window=self._supervision_window,
                second_factor_window=self._second_factor_window,
            )
        self.metrics.decided("granted" if reply.granted else reply.reason.value)
        # DEBUG: every decision is in the access_decisions table already.
        log.debug(
            "access %s: badge %s on %s/%s: %s",
            "granted" if reply.granted else "refused",
            request.badge,
            address.gateway,
            request.machine,
            reply.reason.value,
        )
        return Outgoing(reply_topic, encode(reply), QOS[Channel.ACCESS_REPLY])

    def certify_request(self, address: TopicAddress, topic_name: str, payload: bytes) -> Outgoing | None:
        """A trainer certifies a member at the machine: grant through the rules, or say why not."""
        reply_topic = topic(self.site, address.gateway, Channel.CERTIFY_REPLY)
        try:
            request = decode(CertifyRequest, payload)
        except BadPayload as error:
            log.warning("bad certify request on %s: %s", topic_name, error)
            refusal = _bad_certify_reply(payload, str(error))
            if refusal is None:
                return None
            return Outgoing(reply_topic, encode(refusal), QOS[Channel.CERTIFY_REPLY])
        now = self._clock()
        if request.expires_at_ms + self._tolerance_ms < to_ms(now):
            # Nobody waits for the answer any more: certifying now would surprise the trainer.
            log.info(
                "dropped certify request %s on %s: expired %d ms ago",
                request.request_id,
                topic_name,
                to_ms(now) - request.expires_at_ms,
            )
            return None
        with self._sessions() as db:
            reply = certify_at_machine(db, self.site, address.gateway, request, now)
        return Outgoing(reply_topic, encode(reply), QOS[Channel.CERTIFY_REPLY])

    def usage_event(self, address: TopicAddress, topic_name: str, payload: bytes) -> Outgoing | None:
        ack_topic = topic(self.site, address.gateway, Channel.EVENTS_ACK)
        try:
            event = decode(UsageEvent, payload)
        except BadPayload as error:
            # Refused for good, and said so: resending the same bytes cannot help. The
            # payload is logged so that a manager can still recover the usage by hand.
            log.error("bad usage event on %s: %s; payload %r", topic_name, error, bytes(payload[:300]))
            self.metrics.event_refused()
            refusal = _bad_event_ack(payload, str(error))
            if refusal is None:
                return None
            return Outgoing(ack_topic, encode(refusal), QOS[Channel.EVENTS_ACK])
        with self._sessions() as db:
            ack = ingest(
                db,
                address.gateway,
                event,
                self._clock(),
                site=self.site,
                clock_tolerance_ms=self._clock_tolerance_ms,
            )
        if ack.ok:
            self.metrics.event_ingested(address.gateway, (to_ms(self._clock()) - event.at_ms) / 1000)
        else:
            self.metrics.event_refused()
        return Outgoing(ack_topic, encode(ack), QOS[Channel.EVENTS_ACK])

    def status(
        self, address: TopicAddress, topic_name: str, payload: bytes, *, retained: bool = False
    ) -> None:
        if not payload:
            log.debug("retained status cleared on %s", topic_name)
            return
        try:
            status = decode(GatewayStatus, payload)
        except BadPayload as error:
            log.warning("bad status on %s: %s", topic_name, error)
            return
        now = self._clock()
        # A live "online" was made by the gateway just now: its at_ms tells its clock. A
        # retained one may be hours old, and a will's at_ms is its connection's time.
        live_online = status.state is GatewayState.ONLINE and not retained
        birth = False
        with self._sessions() as db:
            before = link_of(db, self.site, address.gateway) if live_online else None
            outcome = record_status(db, self.site, address.gateway, status, now)
            if live_online and outcome is StatusOutcome.APPLIED:
                self._clock_offset(db, address.gateway, status.at_ms - to_ms(now), now)
                birth = before is None or before.state is not KnownState.ONLINE or before.boot != status.boot
        if birth and self._on_birth is not None:
            self._on_birth(address.gateway)
        if outcome is StatusOutcome.APPLIED:
            self.live.touch()
            log.info("gateway %s is %s (boot %d)", address.gateway, status.state.value, status.boot)
            if status.backlog is not None:  # events the gateway journaled and we have not acked
                self.metrics.gateway_backlog(address.gateway, status.backlog)
        elif outcome is StatusOutcome.STALE:
            log.info(
                "ignored stale %s status of gateway %s, boot %d", status.state, address.gateway, status.boot
            )
        else:
            log.warning("status from unregistered gateway %s on %s", address.gateway, topic_name)

    def machine_state(self, address: TopicAddress, topic_name: str, payload: bytes) -> None:
        """Keep what a machine is doing now, in memory only (:mod:`server.live`)."""
        if not payload:
            log.debug("retained machine state cleared on %s", topic_name)
            return
        try:
            state = decode(MachineState, payload)
        except BadPayload as error:
            log.warning("bad machine state on %s: %s", topic_name, error)
            return
        if state.machine != address.machine:
            log.warning("ignored state of machine %s on %s: not its topic", state.machine, topic_name)
            return
        self.live.machine_state(address.gateway, state, self._clock())

    def _clock_offset(self, db: Session, gateway: str, offset_ms: int, now: datetime) -> None:
        record_offset(db, self.site, gateway, offset_ms, now)
        if abs(offset_ms) > self._clock_tolerance_ms:
            log.warning(
                "gateway %s: its clock is %+d ms off the server's (tolerance %d ms); "
                "its sessions are flagged clock_suspect until it is fixed",
                gateway,
                offset_ms,
                self._clock_tolerance_ms,
            )

    def telemetry(self, address: TopicAddress, topic_name: str, payload: bytes) -> None:
        try:
            sample = decode(Telemetry, payload)
        except BadPayload as error:
            log.warning("bad telemetry on %s: %s", topic_name, error)
            return
        if self._telemetry is not None:
            # Never waits: a slow or absent store only makes the writer drop old samples.
            self._telemetry.offer(MachineSample.of(self.site, address.gateway, sample))


def _json_object(payload: bytes) -> dict[str, Any] | None:
    """The payload as a JSON object, if it is one, to salvage fields from."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None  # not worth parsing: the size limit exists to spare the parser
    try:
        document = json.loads(payload)
    except ValueError:  # includes UnicodeDecodeError
        return None
    return document if isinstance(document, dict) else None


def _field(document: dict[str, Any], name: str, kind: Any) -> Any:
    """Field ``name`` if it is valid on its own as a ``kind`` (a protocol type), else None."""
    try:
        return msgspec.convert(document.get(name), kind)
    except msgspec.ValidationError:
        return None


def _bad_event_ack(payload: bytes, error: str) -> EventAck | None:
    document = _json_object(payload)
    seq = None if document is None else _field(document, "seq", Counter)
    if seq is None or seq < 1:
        return None
    return EventAck(seq=seq, ok=False, error=f"bad event: {error}"[:200])


def _salvage(payload: bytes) -> tuple[dict[str, Any], str, str] | None:
    """The JSON object, request id and machine of a refused request, when they can be read."""
    document = _json_object(payload)
    if document is None:
        return None
    request_id = _field(document, "request_id", Token)
    machine = _field(document, "machine", Ident)
    if request_id is None or machine is None:
        return None
    return document, request_id, machine


def _bad_request_reply(payload: bytes, error: str) -> AccessReply | None:
    salvaged = _salvage(payload)
    if salvaged is None:
        return None
    document, request_id, machine = salvaged
    return AccessReply(
        request_id=request_id,
        machine=machine,
        badge=_field(document, "badge", BadgeUid) or PLACEHOLDER_BADGE,
        granted=False,
        reason=Reason.BAD_REQUEST,
        message=error[:200],
    )


def _bad_certify_reply(payload: bytes, error: str) -> CertifyReply | None:
    salvaged = _salvage(payload)
    if salvaged is None:
        return None
    document, request_id, machine = salvaged
    return CertifyReply(
        request_id=request_id,
        machine=machine,
        member_badge=_field(document, "member_badge", BadgeUid) or PLACEHOLDER_BADGE,
        certified=False,
        reason=Reason.BAD_REQUEST,
        message=error[:200],
    )

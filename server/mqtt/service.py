"""The server's MQTT side: two connections, so that a decision never queues behind usage.

Access requests arrive on a *decision lane* of their own: one MQTT connection
whose paho network thread answers each request where it is delivered (a hop
to another thread would add its wake-up latency to every badge tap). Usage
events, gateway status and telemetry arrive on an *ingest lane*, a second
connection with its own thread: ingesting an event commits a transaction,
and a badge tap must not wait behind that commit. Each lane handles its
messages in order. Scaling out is done with more processes sharing the
subscriptions (``mqtt_shared_group``), not with more threads.

With a signing key, a third connection, the *allowlist lane*, carries the signed
allowlist snapshots (:mod:`server.mqtt.allowlists`), computed on a thread of their own:
a snapshot can weigh megabytes, and neither a badge tap nor an event's ack may queue
behind it.
"""

import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import paho.mqtt.client as paho
import sqlalchemy as sa
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol.messages import Command, CommandAction, encode
from protocol.mqtt import make_client
from protocol.topics import QOS, Channel, shared, subscription, topic
from server.clock import Clock, utc_now
from server.db import SessionFactory
from server.models import Gateway as GatewayRow
from server.mqtt.allowlists import AllowlistPublisher
from server.mqtt.handlers import Handlers
from server.observability import ServerMetrics
from server.settings import Settings
from server.signing import SigningKey, load_signing_key
from server.telemetry import TelemetryWriter

log = logging.getLogger(__name__)

KEEPALIVE_S = 30

# A certification at the machine is answered as fast as a tap: the trainer and the member are waiting.
DECISION_CHANNELS = (Channel.ACCESS_REQUEST, Channel.CERTIFY_REQUEST)
_ACCESS_REPLY_SUFFIX = "/" + Channel.ACCESS_REPLY.value
INGEST_CHANNELS = (Channel.EVENTS, Channel.TELEMETRY, Channel.STATUS, Channel.MACHINE_STATE)
# Retained states, read by every server process: each keeps the live view of every machine,
# shared it would get only its share (and brokers differ on retained messages for shared
# subscriptions); applying a state twice is harmless. Never shared.
UNSHARED_CHANNELS = frozenset({Channel.STATUS, Channel.MACHINE_STATE})

COMMAND_TTL_S = 60
"""A command not carried out within this is dropped by the gateway (it would be stale)."""

PUBLISH_TIMEOUT_S = 10.0
"""How long the allowlist lane waits for the broker to acknowledge a snapshot."""


class _Lane:
    """One MQTT connection subscribed to some channels, handling their messages in its thread."""

    def __init__(
        self,
        name: str,
        service: "MqttService",
        client_id: str,
        filters: list[tuple[str, int]],
        *,
        timed: bool = False,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._on_ready = on_ready  # called on the lane's thread each time it is connected and subscribed
        # Decisions are timed from the moment paho read the request off the socket.
        self._timed = timed
        self.filters = filters
        self._broker = service.broker
        self._service = service
        self._client = make_client(self._broker, client_id)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self.subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self._running = False

    @property
    def connected(self) -> bool:
        return self.subscribed.is_set() and self._client.is_connected()

    def start(self) -> None:
        self._running = True
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def stop(self) -> None:
        self._running = False
        self._client.disconnect()
        self._client.loop_stop()
        self.subscribed.clear()

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused the %s connection: %s", self._broker, self.name, reason_code)
            return
        log.info("%s lane connected to %s", self.name, self._broker)
        if not self.filters:  # a lane that only publishes
            self._ready()
            return
        # A clean session forgets subscriptions: subscribe again on every connection.
        result, mid = client.subscribe(self.filters)
        if result is not MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.error("could not subscribe the %s lane: %s", self.name, paho.error_string(result))
            return
        self._subscribe_mid = mid

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [f for (f, _), code in zip(self.filters, reason_codes, strict=False) if code.is_failure]
        if refused:
            log.error("broker refused the subscriptions %s", refused)
            return
        self._ready()

    def _ready(self) -> None:
        self.subscribed.set()
        if self._on_ready is not None:
            self._on_ready()

    def publish(self, topic_name: str, payload: bytes, qos: int) -> bool:
        """Hand a message to paho (not retained, not waited for); False when not connected."""
        if not self.connected:
            return False
        info = self._client.publish(topic_name, payload, qos=qos, retain=False)
        return info.rc is MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish_retained(self, topic_name: str, payload: bytes, qos: int) -> bool:
        """Publish and wait for the broker's acknowledgement; False if it did not come."""
        if not self.connected:
            return False
        info = self._client.publish(topic_name, payload, qos=qos, retain=True)
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as error:
            log.warning("%s lane could not publish on %s: %s", self.name, topic_name, error)
            return False
        return info.is_published()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.subscribed.clear()
        if self._running:
            log.warning("%s lane lost the broker %s (%s); reconnecting", self.name, self._broker, reason_code)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # Whatever happens here must not escape: paho would drop the connection.
        topic_name = "?"
        try:
            topic_name = message.topic
            outgoing = self._service.handlers.handle(
                topic_name, bytes(message.payload), retained=bool(message.retain)
            )
            if outgoing is not None:
                info = client.publish(outgoing.topic, outgoing.payload, qos=outgoing.qos, retain=False)
                if info.rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
                    log.warning("could not answer on %s: %s", outgoing.topic, paho.error_string(info.rc))
                elif self._timed and outgoing.topic.endswith(_ACCESS_REPLY_SUFFIX):
                    self._service.handlers.metrics.decision_took(time.monotonic() - message.timestamp)
        except Exception:
            log.exception("failed to handle a message on %r", topic_name)


class MqttService:
    """Answers the gateways of ``settings.site``; :meth:`start` returns at once and reconnects on its own."""

    def __init__(
        self,
        settings: Settings,
        session_factory: SessionFactory,
        *,
        clock: Clock = utc_now,
        client_id: str | None = None,
        metrics: ServerMetrics | None = None,
        telemetry: TelemetryWriter | None = None,
        signing_key: SigningKey | None = None,
    ) -> None:
        """``signing_key``: the site's key; by default the one ``settings`` name (none: no allowlists).

        Raises :class:`~server.signing.SigningKeyError` when the configured key cannot be read.
        """
        self._settings = settings
        self.broker = settings.broker
        self.signing_key = signing_key or load_signing_key(settings.signing_key_file, settings.signing_key_id)
        # A random suffix: two servers with the same id would keep kicking each other off the broker.
        self.client_id = client_id or f"atelier-server-{settings.site}-{secrets.token_hex(4)}"
        self.allowlists: AllowlistPublisher | None = None
        allowlist_lane = None
        if self.signing_key is None:
            log.warning(
                "no signing key (ATELIER_SIGNING_KEY_FILE): no allowlist is published, so gateways "
                "refuse every badge while they cannot reach the server; see `atelier keys create`"
            )
        else:
            lane = allowlist_lane = _Lane(
                "allowlist", self, f"{self.client_id}-a", [], on_ready=self._allowlist_lane_ready
            )
            self.allowlists = AllowlistPublisher(
                settings.site,
                session_factory,
                self.signing_key,
                lambda name, payload: lane.publish_retained(name, payload, QOS[Channel.ALLOWLIST]),
                ready=lambda: lane.connected,
                clock=clock,
                refresh_s=settings.allowlist_refresh_s,
                ttl=timedelta(seconds=settings.allowlist_ttl_s),
            )
        self.handlers = Handlers(
            settings.site,
            session_factory,
            clock,
            settings.request_clock_tolerance_ms,
            metrics=metrics,
            telemetry=telemetry,
            supervision_window=timedelta(seconds=settings.supervision_window_s),
            second_factor_window=timedelta(seconds=settings.second_factor_window_s),
            clock_tolerance_ms=settings.clock_tolerance_s * 1000,
            on_birth=None if self.allowlists is None else self.allowlists.request,
        )
        self.live = self.handlers.live
        """What each machine is doing now (:mod:`server.live`), for the web's live view."""
        self._lanes = (
            _Lane("decision", self, f"{self.client_id}-d", self._filters(DECISION_CHANNELS), timed=True),
            _Lane(
                "ingest",
                self,
                f"{self.client_id}-i",
                self._filters(INGEST_CHANNELS),
                on_ready=self._refresh_gateways,
            ),
        )
        self._session_factory = session_factory
        self._clock = clock
        self._allowlist_lane = allowlist_lane
        self._started = False

    def send_command(
        self, gateway: str, action: CommandAction, machine: str | None = None, reason: str | None = None
    ) -> bool:
        """Publish a command to ``gateway``, valid for COMMAND_TTL_S; False if it could not be sent.

        Each command has a random id: a gateway carries out an id once and drops an expired
        command, so a command captured on the way cannot be replayed later.
        """
        now_ms = int(self._clock().timestamp() * 1000)
        command = Command(
            command_id=secrets.token_hex(12),
            action=action,
            machine=machine,
            issued_at_ms=now_ms,
            expires_at_ms=now_ms + COMMAND_TTL_S * 1000,
            reason=None if reason is None else reason[:200],
        )
        name = topic(self._settings.site, gateway, Channel.COMMAND)
        sent = self._lanes[1].publish(name, encode(command), QOS[Channel.COMMAND])
        if not sent:
            log.warning("could not send %s to gateway %s: no broker connection", action.value, gateway)
        return sent

    def _refresh_gateways(self) -> None:
        # On the ingest lane's thread, once subscribed (at start and after every reconnection):
        # what the gateways published while this server was away reached nobody. A refresh
        # makes each one publish its status and machine states again and replay its journal.
        try:
            with self._session_factory() as db:
                gateways = list(
                    db.scalars(sa.select(GatewayRow.slug).where(GatewayRow.site == self._settings.site))
                )
        except Exception:
            log.exception("could not list the gateways to refresh")
            return
        for gateway in gateways:
            self.send_command(gateway, CommandAction.REFRESH)
        if gateways:
            log.info("asked %d gateways to publish again what this server may have missed", len(gateways))

    def _allowlist_lane_ready(self) -> None:
        # At start, and after every reconnection: the broker may have lost its retained messages.
        if self.allowlists is not None:
            self.allowlists.request()

    def _filters(self, channels: tuple[Channel, ...]) -> list[tuple[str, int]]:
        site, group = self._settings.site, self._settings.mqtt_shared_group
        filters = []
        for channel in channels:
            filter_ = subscription(channel, site)
            if group is not None and channel not in UNSHARED_CHANNELS:
                filter_ = shared(group, filter_)
            filters.append((filter_, QOS[channel]))
        return filters

    def subscriptions(self) -> list[tuple[str, int]]:
        """The filters and QoS the service subscribes to, over both lanes."""
        return [f for lane in self._lanes for f in lane.filters]

    @property
    def connected(self) -> bool:
        """Both lanes connected and subscribed: requests sent now will be answered."""
        return all(lane.connected for lane in self._lanes)

    @property
    def allowlists_connected(self) -> bool | None:
        """Whether allowlists can be published now; None without a signing key."""
        return None if self._allowlist_lane is None else self._allowlist_lane.connected

    def _every_lane(self) -> tuple[_Lane, ...]:
        return self._lanes if self._allowlist_lane is None else (*self._lanes, self._allowlist_lane)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        log.info("connecting to %s as %s for site %s", self.broker, self.client_id, self._settings.site)
        for lane in self._every_lane():
            lane.start()
        if self.allowlists is not None:
            self.allowlists.start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.allowlists is not None:
            self.allowlists.stop()
        for lane in self._every_lane():
            lane.stop()

    def wait_until_ready(self, timeout: float) -> bool:
        """Wait until every lane is connected (and subscribed); False if that took longer than ``timeout`` s."""
        return all(lane.subscribed.wait(timeout) for lane in self._every_lane())

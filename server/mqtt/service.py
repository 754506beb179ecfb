"""The server's MQTT side: two connections, so that a decision never queues behind usage.

Access requests arrive on a *decision lane* of their own: one MQTT connection
whose paho network thread answers each request where it is delivered (a hop
to another thread would add its wake-up latency to every badge tap). Usage
events, gateway status and telemetry arrive on an *ingest lane*, a second
connection with its own thread: ingesting an event commits a transaction,
and a badge tap must not wait behind that commit. Each lane handles its
messages in order. Scaling out is done with more processes sharing the
subscriptions (``mqtt_shared_group``), not with more threads.
"""

import logging
import secrets
import threading
import time
from datetime import timedelta
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol.mqtt import make_client
from protocol.topics import QOS, Channel, shared, subscription
from server.clock import Clock, utc_now
from server.db import SessionFactory
from server.mqtt.handlers import Handlers
from server.observability import ServerMetrics
from server.settings import Settings
from server.telemetry import TelemetryWriter

log = logging.getLogger(__name__)

KEEPALIVE_S = 30

# A certification at the machine is answered as fast as a tap: the trainer and the member are waiting.
DECISION_CHANNELS = (Channel.ACCESS_REQUEST, Channel.CERTIFY_REQUEST)
_ACCESS_REPLY_SUFFIX = "/" + Channel.ACCESS_REPLY.value
INGEST_CHANNELS = (Channel.EVENTS, Channel.TELEMETRY, Channel.STATUS)


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
    ) -> None:
        self.name = name
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
        self.subscribed.set()

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
            outgoing = self._service.handlers.handle(topic_name, bytes(message.payload))
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
    ) -> None:
        self._settings = settings
        self.broker = settings.broker
        self.handlers = Handlers(
            settings.site,
            session_factory,
            clock,
            settings.request_clock_tolerance_ms,
            metrics=metrics,
            telemetry=telemetry,
            supervision_window=timedelta(seconds=settings.supervision_window_s),
        )
        # A random suffix: two servers with the same id would keep kicking each other off the broker.
        self.client_id = client_id or f"atelier-server-{settings.site}-{secrets.token_hex(4)}"
        self._lanes = (
            _Lane("decision", self, f"{self.client_id}-d", self._filters(DECISION_CHANNELS), timed=True),
            _Lane("ingest", self, f"{self.client_id}-i", self._filters(INGEST_CHANNELS)),
        )
        self._started = False

    def _filters(self, channels: tuple[Channel, ...]) -> list[tuple[str, int]]:
        site, group = self._settings.site, self._settings.mqtt_shared_group
        filters = []
        for channel in channels:
            filter_ = subscription(channel, site)
            # Status is read by every process, not shared: a broker gives retained
            # messages (the status of each gateway) to plain subscriptions only, and
            # applying a status twice is harmless.
            if group is not None and channel is not Channel.STATUS:
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

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        log.info("connecting to %s as %s for site %s", self.broker, self.client_id, self._settings.site)
        for lane in self._lanes:
            lane.start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for lane in self._lanes:
            lane.stop()

    def wait_until_ready(self, timeout: float) -> bool:
        """Wait until both lanes are subscribed; False if that took longer than ``timeout`` s."""
        return all(lane.subscribed.wait(timeout) for lane in self._lanes)

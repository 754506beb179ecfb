"""The server's MQTT client: subscribe for the site, answer in paho's network thread.

Requests are handled where paho delivers them, in its network thread, each
with a database session of its own: a hop to another thread would add its
wake-up latency to every badge tap, and one thread answering in order keeps
this simple. Scaling out is done with more processes sharing the
subscriptions (``mqtt_shared_group``), not with threads.
"""

import logging
import secrets
import threading
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
from server.settings import Settings

log = logging.getLogger(__name__)

KEEPALIVE_S = 30


class MqttService:
    """Answers the gateways of ``settings.site``; :meth:`start` returns at once and reconnects on its own."""

    def __init__(
        self,
        settings: Settings,
        session_factory: SessionFactory,
        *,
        clock: Clock = utc_now,
        client_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._broker = settings.broker
        self.handlers = Handlers(settings.site, session_factory, clock, settings.request_clock_tolerance_ms)
        # A random suffix: two servers with the same id would keep kicking each other off the broker.
        self.client_id = client_id or f"atelier-server-{settings.site}-{secrets.token_hex(4)}"
        self._client = make_client(self._broker, self.client_id)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self._started = False

    def subscriptions(self) -> list[tuple[str, int]]:
        """The filters and QoS the service subscribes to."""
        site, group = self._settings.site, self._settings.mqtt_shared_group
        filters = []
        for channel in (Channel.ACCESS_REQUEST, Channel.EVENTS, Channel.TELEMETRY, Channel.STATUS):
            filter_ = subscription(channel, site)
            # Status is read by every process, not shared: a broker gives retained
            # messages (the status of each gateway) to plain subscriptions only, and
            # applying a status twice is harmless.
            if group is not None and channel is not Channel.STATUS:
                filter_ = shared(group, filter_)
            filters.append((filter_, QOS[channel]))
        return filters

    @property
    def connected(self) -> bool:
        """Connected and subscribed: requests sent now will be answered."""
        return self._subscribed.is_set() and self._client.is_connected()

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        log.info("connecting to %s as %s for site %s", self._broker, self.client_id, self._settings.site)
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._client.disconnect()
        self._client.loop_stop()
        self._subscribed.clear()

    def wait_until_ready(self, timeout: float) -> bool:
        """Wait until connected and subscribed; False if that took longer than ``timeout`` s."""
        return self._subscribed.wait(timeout)

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused the connection: %s", self._broker, reason_code)
            return
        log.info("connected to %s", self._broker)
        # A clean session forgets subscriptions: subscribe again on every connection.
        result, mid = client.subscribe(self.subscriptions())
        if result is not MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.error("could not subscribe: %s", paho.error_string(result))
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
        refused = [
            filter_
            for (filter_, _), code in zip(self.subscriptions(), reason_codes, strict=False)
            if code.is_failure
        ]
        if refused:
            log.error("broker refused the subscriptions %s", refused)
            return
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._subscribed.clear()
        if self._started:
            log.warning("lost the broker %s (%s); reconnecting", self._broker, reason_code)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # Whatever happens here must not escape: paho would drop the connection.
        topic_name = "?"
        try:
            topic_name = message.topic
            outgoing = self.handlers.handle(topic_name, bytes(message.payload))
            if outgoing is not None:
                info = client.publish(outgoing.topic, outgoing.payload, qos=outgoing.qos, retain=False)
                if info.rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
                    log.warning("could not answer on %s: %s", outgoing.topic, paho.error_string(info.rc))
        except Exception:
            log.exception("failed to handle a message on %r", topic_name)

"""A paho client made by ``make_client``, driven from a test without blind sleeps.

Every wait is on an event the broker causes (CONNACK, SUBACK, PUBACK, a
message, a disconnection), with a timeout that only bounds a failure.
"""

from __future__ import annotations

import queue
import socket
import threading
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from protocol.mqtt import BrokerURL, make_client

TIMEOUT = 10.0
"""Seconds before a wait counts as a failure; never reached when things work."""


class Peer:
    """One MQTT client: connect, subscribe, publish and wait for what arrives."""

    def __init__(
        self,
        url: BrokerURL | str,
        client_id: str,
        *,
        ca_file: str | None = None,
        messages: queue.Queue[paho.MQTTMessage] | None = None,
    ) -> None:
        self.url = BrokerURL.parse(url) if isinstance(url, str) else url
        self.client = make_client(self.url, client_id, ca_file=ca_file)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue() if messages is None else messages
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self._subacks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # paho callbacks, run on the client's network thread
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self.connack = reason
        self.connected.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self.disconnected.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with self._lock:
            self._subacks.setdefault(mid, threading.Event()).set()

    def connect(self) -> ReasonCode:
        """Connect and wait for the CONNACK; return its reason code (success or refusal)."""
        self.client.connect(self.url.host, self.url.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "no CONNACK from the broker"
        assert self.connack is not None
        return self.connack

    def socket(self) -> socket.socket:
        sock = self.client.socket()
        assert isinstance(sock, socket.socket)
        return sock

    def subscribe(self, filter_: str, qos: int = 1) -> None:
        result, mid = self.client.subscribe(filter_, qos)
        assert result == paho.MQTT_ERR_SUCCESS
        assert mid is not None
        with self._lock:
            done = self._subacks.setdefault(mid, threading.Event())
        assert done.wait(TIMEOUT), f"no SUBACK for {filter_}"

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"not acknowledged: {topic}"

    def expect(self) -> paho.MQTTMessage:
        """The next message that arrives."""
        try:
            return self.messages.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError("no message arrived") from None

    def kill_connection(self) -> None:
        """Drop the TCP connection without DISCONNECT, as a crash or a cut cable would."""
        self.client.loop_stop()
        sock = self.socket()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Peer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

"""A Shelly Plus 1PM as a machine's switch and current sensor, over Gen2 RPC on MQTT.

The plug is configured (its own web page, Settings → MQTT) to connect to a broker
the gateway reaches, with "RPC status notifications" and "Generic status update"
on. Then, with ``<prefix>`` its topic prefix (its device id by default):

- requests go to ``<prefix>/rpc`` as JSON-RPC frames
  ``{"id": 7, "src": "<ours>", "method": "Switch.Set", "params": {"id": 0, "on": true}}``,
  and the answer comes on ``<src>/rpc``:
  ``{"id": 7, "src": "<device id>", "dst": "<ours>", "result": {"was_on": false}}``
  (or ``"error": {"code": ..., "message": ...}``);
- the switch's whole status is published on ``<prefix>/status/switch:0`` when it
  changes (``output``, ``apower``, ``voltage``, ``current`` ...), changes also come as
  ``NotifyStatus`` on ``<prefix>/events/rpc``, and ``<prefix>/online`` is ``true`` or
  ``false`` (its last will).

The gateway asks ``Switch.GetStatus`` every ``poll_s`` as well, so the current is
never older than that. A switch command waits for the plug's answer: a plug that
does not answer makes the machine show an error, and a session is never started on
a machine the plug did not power. On the first connection the plug is switched
off, as a relay on a pin is: a restarted gateway never leaves a machine powered.
Set the plug's own "power-on default" to off, too.
"""

import itertools
import json
import logging
import secrets
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from controller.hardware.interfaces import HardwareClosed, PartFailed
from protocol.mqtt import BrokerURL, make_client

log = logging.getLogger(__name__)

MAX_PAYLOAD = 16_384
"""Larger messages from a plug are ignored (a full Shelly.GetStatus is about 3 kB)."""


class ShellyPlug:
    """One Shelly switch channel, shared by the machine's current sensor and switch."""

    def __init__(self, broker: BrokerURL, device: str, switch_id: int = 0, *, poll_s: float = 1.0) -> None:
        self.broker = broker
        self.device = device
        self.switch_id = switch_id
        self.poll_s = poll_s
        self.src = f"atelier-{secrets.token_hex(4)}"
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._answers: dict[int, dict[str, Any]] = {}
        self._waiting: set[int] = set()
        self.output: bool | None = None
        self.amps: float | None = None
        self.watts: float | None = None
        self.heard_at: float | None = None
        self.online: bool | None = None
        self.stale_after_s = max(5.0, 3 * poll_s)
        """A current older than this is not trusted: the plug has gone quiet."""
        self._first_connection = True
        self._started_at = time.monotonic()
        self._closing = threading.Event()
        self._users = 0
        self._client = make_client(broker, self.src)
        self._client.on_connect = self._connected
        self._client.on_message = self._message
        self._client.connect_async(broker.host, broker.port, keepalive=30)
        self._client.loop_start()
        self._poller = threading.Thread(target=self._poll, name=f"Shelly {device}", daemon=True)
        self._poller.start()

    @property
    def component(self) -> str:
        return f"switch:{self.switch_id}"

    # MQTT (paho's thread): nothing here may raise.

    def _connected(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            log.error("Shelly %s: the broker %s refused us: %s", self.device, self.broker, reason)
            return
        for topic in (
            f"{self.src}/rpc",
            f"{self.device}/status/{self.component}",
            f"{self.device}/events/rpc",
            f"{self.device}/online",
        ):
            client.subscribe(topic, qos=1)
        if self._first_connection:
            self._first_connection = False
            self._request("Switch.Set", {"id": self.switch_id, "on": False})
        self._request("Switch.GetStatus", {"id": self.switch_id})

    def _message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._take(message.topic, bytes(message.payload))
        except Exception:
            log.exception("Shelly %s: could not handle a message on %s", self.device, message.topic)

    def _take(self, topic: str, payload: bytes) -> None:
        if topic == f"{self.device}/online":
            self.online = payload.strip().lower() == b"true"
            log.log(
                logging.INFO if self.online else logging.WARNING,
                "Shelly %s is %s",
                self.device,
                "online" if self.online else "offline",
            )
            return
        if len(payload) > MAX_PAYLOAD:
            log.warning("Shelly %s: ignored a %d-byte message on %s", self.device, len(payload), topic)
            return
        try:
            frame = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            log.warning(
                "Shelly %s: ignored a message that is not JSON on %s: %r", self.device, topic, payload[:80]
            )
            return
        if not isinstance(frame, dict):
            log.warning("Shelly %s: ignored a message that is not a JSON object on %s", self.device, topic)
            return
        if topic == f"{self.src}/rpc":
            self._answered(frame)
        elif topic.endswith("/events/rpc"):
            params = frame.get("params")
            if frame.get("method") == "NotifyStatus" and isinstance(params, dict):
                status = params.get(self.component)
                if isinstance(status, dict):
                    self._status(status)
        else:
            self._status(frame)

    def _answered(self, frame: dict[str, Any]) -> None:
        request = frame.get("id")
        result = frame.get("result")
        if isinstance(result, dict) and "output" in result:
            self._status(result)  # a Switch.GetStatus answer
        with self._lock:
            if isinstance(request, int) and request in self._waiting:
                self._answers[request] = frame
                self._lock.notify_all()

    def _status(self, status: dict[str, Any]) -> None:
        with self._lock:
            output, current, power = status.get("output"), status.get("current"), status.get("apower")
            if isinstance(output, bool):
                self.output = output
            if isinstance(current, int | float) and not isinstance(current, bool) and current >= 0:
                self.amps = float(current)
            if isinstance(power, int | float) and not isinstance(power, bool):
                self.watts = float(power)
            self.heard_at = time.monotonic()

    # Requests.

    def _request(self, method: str, params: dict[str, Any]) -> int:
        request = next(self._ids)
        frame = {"id": request, "src": self.src, "method": method, "params": params}
        self._client.publish(f"{self.device}/rpc", json.dumps(frame), qos=1)
        return request

    def call(self, method: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Call ``method`` and wait for its result; :class:`PartFailed` if the plug does not answer
        in time or answers with an error."""
        if self._closing.is_set():
            raise HardwareClosed(f"Shelly {self.device} is closed")
        with self._lock:
            request = next(self._ids)
            self._waiting.add(request)
        try:
            frame = {"id": request, "src": self.src, "method": method, "params": params}
            self._client.publish(f"{self.device}/rpc", json.dumps(frame), qos=1)
            with self._lock:
                if not self._lock.wait_for(lambda: request in self._answers, timeout_s):
                    raise PartFailed(f"Shelly {self.device} did not answer {method} within {timeout_s:.1f} s")
                answer = self._answers.pop(request)
        finally:
            with self._lock:
                self._waiting.discard(request)
        error = answer.get("error")
        if error is not None or not isinstance(answer.get("result"), dict):
            raise PartFailed(f"Shelly {self.device} refused {method}: {error}")
        result: dict[str, Any] = answer["result"]
        return result

    def _poll(self) -> None:
        while not self._closing.wait(self.poll_s):
            if self._client.is_connected():
                self._request("Switch.GetStatus", {"id": self.switch_id})

    def current(self) -> float:
        """The last current the plug reported; :class:`PartFailed` if it has gone quiet."""
        if self._closing.is_set():
            raise HardwareClosed(f"Shelly {self.device} is closed")
        stale_after = self.stale_after_s
        with self._lock:
            heard_at, amps = self.heard_at, self.amps
        now = time.monotonic()
        if heard_at is None:
            if now - self._started_at < stale_after:
                return 0.0  # not heard yet: starting up
            raise PartFailed(f"Shelly {self.device} has not reported its status since the gateway started")
        if now - heard_at > stale_after:
            raise PartFailed(f"Shelly {self.device} has not reported its status for {now - heard_at:.0f} s")
        return amps or 0.0

    # Sharing between the machine's parts.

    def acquire(self) -> "ShellyPlug":
        with self._lock:
            self._users += 1
        return self

    def release(self) -> bool:
        """One part lets go; the last one closes the connection. Whether it was the last."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self._closing.set()
            self._client.disconnect()
            self._client.loop_stop()
            self._poller.join(timeout=2.0)
        return last


_plugs: dict[tuple[str, str, int], ShellyPlug] = {}
_plugs_lock = threading.Lock()


def shared_plug(mqtt_url: str, device: str, switch_id: int, *, poll_s: float = 1.0) -> ShellyPlug:
    """The plug for (broker, device, switch): one connection however many parts use it."""
    key = (mqtt_url, device, switch_id)
    with _plugs_lock:
        plug = _plugs.get(key)
        if plug is None or plug._closing.is_set():
            plug = _plugs[key] = ShellyPlug(BrokerURL.parse(mqtt_url), device, switch_id, poll_s=poll_s)
        else:
            plug.poll_s = min(plug.poll_s, poll_s)
        return plug.acquire()


def _let_go(plug: ShellyPlug) -> None:
    with _plugs_lock:
        if plug.release():
            for key, known in list(_plugs.items()):
                if known is plug:
                    del _plugs[key]


class ShellyCurrent:
    """The current the plug measures, as a machine's current sensor."""

    def __init__(self, mqtt_url: str, device: str, switch_id: int = 0, *, poll_s: float = 1.0) -> None:
        self.plug = shared_plug(mqtt_url, device, switch_id, poll_s=poll_s)
        self._closed = False

    def amps(self) -> float:
        if self._closed:
            raise HardwareClosed(f"Shelly {self.plug.device} current sensor is closed")
        return self.plug.current()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _let_go(self.plug)


class ShellySwitch:
    """The plug's relay, as a machine's switch: each command waits for the plug's answer."""

    def __init__(self, mqtt_url: str, device: str, switch_id: int = 0, *, timeout_s: float = 2.0) -> None:
        self.plug = shared_plug(mqtt_url, device, switch_id)
        self.timeout_s = timeout_s
        self._closed = False

    def _set(self, on: bool) -> None:
        if self._closed:
            raise HardwareClosed(f"Shelly {self.plug.device} switch is closed")
        self.plug.call("Switch.Set", {"id": self.plug.switch_id, "on": on}, self.timeout_s)
        self.plug.output = on

    def on(self) -> None:
        self._set(True)

    def off(self) -> None:
        self._set(False)

    @property
    def is_on(self) -> bool:
        if self._closed:
            raise HardwareClosed(f"Shelly {self.plug.device} switch is closed")
        return bool(self.plug.output)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _let_go(self.plug)

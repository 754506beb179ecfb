"""A Shelly Plus 1PM on the test's broker, speaking Gen2 RPC over MQTT as the real one does.

Message shapes follow Shelly's Gen2 API documentation (shelly-api-docs.shelly.cloud,
"RPC Protocol", "RPC Channels", "Notifications", "Switch"): requests on
``<prefix>/rpc``, responses on ``<src>/rpc`` with ``id``, ``src``, ``dst`` and ``result`` or
``error``, the whole switch status on ``<prefix>/status/switch:0``, ``NotifyStatus`` on
``<prefix>/events/rpc``, and ``true``/``false`` on ``<prefix>/online``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from protocol.mqtt import BrokerURL, make_client


class FakeShelly:
    def __init__(self, broker_url: str, prefix: str, *, output: bool = True) -> None:
        self.prefix = prefix
        self.device_id = "shellyplus1pm-a8032ab12345"
        self.output = output
        self.current = 0.0
        self.voltage = 231.4
        self.answering = True
        self.error: dict[str, Any] | None = None
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        url = BrokerURL.parse(broker_url)
        self._client = make_client(url, f"fake-{prefix.replace('/', '-')}")
        self._client.will_set(f"{prefix}/online", "false", qos=1, retain=True)
        self._client.on_connect = self._connected
        self._client.on_message = self._message
        self._client.on_subscribe = lambda *args: self._ready.set()
        self._client.connect(url.host, url.port)
        self._client.loop_start()
        assert self._ready.wait(10), "the fake Shelly subscribed"

    def _connected(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        client.publish(f"{self.prefix}/online", "true", qos=1, retain=True)
        client.subscribe(f"{self.prefix}/rpc", qos=1)

    def status(self) -> dict[str, Any]:
        power = round(self.current * self.voltage * 0.9, 1) if self.output else 0.0
        return {
            "id": 0,
            "source": "MQTT",
            "output": self.output,
            "apower": power,
            "voltage": self.voltage,
            "current": round(self.current if self.output else 0.0, 3),
            "aenergy": {"total": 12.345, "by_minute": [0.0, 0.0, 0.0], "minute_ts": int(time.time())},
            "temperature": {"tC": 41.2, "tF": 106.2},
        }

    def _message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        request = json.loads(message.payload)
        with self._lock:
            self.requests.append(request)
        if not self.answering:
            return
        source, method, params = request["src"], request["method"], request.get("params", {})
        reply: dict[str, Any] = {"id": request["id"], "src": self.device_id, "dst": source}
        if self.error is not None:
            reply["error"] = self.error
        elif method == "Switch.Set":
            reply["result"] = {"was_on": self.output}
            changed = self.output != params["on"]
            self.output = params["on"]
            if changed:
                self.publish_status()
        elif method == "Switch.GetStatus":
            reply["result"] = self.status()
        else:
            reply["error"] = {"code": 404, "message": f"No handler for {method}"}
        client.publish(f"{source}/rpc", json.dumps(reply), qos=1)

    def publish_status(self) -> None:
        status = self.status()
        self._client.publish(f"{self.prefix}/status/switch:0", json.dumps(status), qos=1)
        notification = {
            "src": self.device_id,
            "dst": f"{self.prefix}/events",
            "method": "NotifyStatus",
            "params": {
                "ts": time.time(),
                "switch:0": {"id": 0, "output": self.output, "current": status["current"]},
            },
        }
        self._client.publish(f"{self.prefix}/events/rpc", json.dumps(notification), qos=1)

    def set_current(self, amps: float) -> None:
        """The machine now draws ``amps``; the plug reports it (as it does when power changes)."""
        self.current = amps
        self.publish_status()

    def send_raw(self, topic: str, payload: bytes) -> None:
        self._client.publish(f"{self.prefix}/{topic}", payload, qos=1)

    def methods(self) -> list[str]:
        with self._lock:
            return [request["method"] for request in self.requests]

    def close(self) -> None:
        self._client.publish(f"{self.prefix}/online", "false", qos=1, retain=True).wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

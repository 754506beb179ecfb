"""Tells what happens in the demo workshop, as it travels over MQTT.

It is an ordinary MQTT client that listens to the site's traffic (requests,
replies, events, gateway status), so what it prints is what the gateways and
the server really said to each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as paho

from demo.workshop import MEMBERS, UNKNOWN_BADGE
from protocol.errors import ProtocolError
from protocol.messages import (
    AccessReply,
    CertifyReply,
    DecidedBy,
    EventKind,
    GatewayState,
    GatewayStatus,
    UsageEvent,
    decode,
)
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, parse_topic, subscription

_NAMES = {member.badge: member.name for member in MEMBERS} | {UNKNOWN_BADGE: "an unknown badge"}

_END_REASONS = {
    "badge_out": "badged out",
    "idle_timeout": "idle timeout",
    "lock_command": "locked by the server",
    "gateway_stopped": "gateway stopped",
    "handover": "handed over to the next member",
    "prepaid_limit": "prepaid balance used up",
    "hard_limit": "power cut at the machine's hard limit",
    "gateway_restart": "the gateway restarted mid-session; closed at its last checkpoint",
}


def seconds(ms: int) -> str:
    return f"{ms / 1000:.1f} s"


class Narrator:
    def __init__(self, mqtt_url: str, site: str, say: Callable[[str], None]) -> None:
        self._say = say
        self._site = site
        self._connected = threading.Event()
        url = BrokerURL.parse(mqtt_url)
        self._client = make_client(url, f"demo-narrator-{int(time.time())}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._url = url
        self.sessions_ended = 0
        self._seen: set[tuple[str, int]] = set()  # (gateway, seq): a replayed event is told once
        self._statuses: dict[str, tuple[GatewayState, int]] = {}
        self._names: dict[int, str] = {}  # member ids seen in replies

    def start(self, timeout: float = 10) -> None:
        self._client.connect_async(self._url.host, self._url.port)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise RuntimeError(f"the narrator could not reach the broker at {self._url}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: object, rc: object, props: object
    ) -> None:
        for channel in (Channel.ACCESS_REPLY, Channel.CERTIFY_REPLY, Channel.EVENTS, Channel.STATUS):
            client.subscribe(subscription(channel, site=self._site), qos=1)
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        try:
            address = parse_topic(message.topic)
            if address.channel is Channel.ACCESS_REPLY:
                self._reply(decode(AccessReply, message.payload))
            elif address.channel is Channel.CERTIFY_REPLY:
                self._certified(decode(CertifyReply, message.payload))
            elif address.channel is Channel.EVENTS:
                event = decode(UsageEvent, message.payload)
                if (address.gateway, event.seq) not in self._seen:
                    self._seen.add((address.gateway, event.seq))
                    self._event(event)
            elif address.channel is Channel.STATUS:
                self._status(address.gateway, decode(GatewayStatus, message.payload))
        except ProtocolError as error:
            self._say(f"(unreadable message on {message.topic}: {error})")

    def _reply(self, reply: AccessReply) -> None:
        who = reply.member_name or _NAMES.get(reply.badge, f"badge {reply.badge}")
        if reply.member_id is not None:
            self._names[reply.member_id] = who
        if reply.granted:
            if reply.supervisor_id is not None:
                supervisor = self._names.get(reply.supervisor_id, f"member {reply.supervisor_id}")
                self._say(f"{reply.machine:<13} {who}: granted under the supervision of {supervisor}")
            elif reply.trainer:
                self._say(f"{reply.machine:<13} {who}: granted, as a trainer for this machine")
            else:
                self._say(f"{reply.machine:<13} {who}: granted, the machine powers on")
        else:
            self._say(f"{reply.machine:<13} {who}: REFUSED ({reply.reason.value}) {reply.message}")

    def _certified(self, reply: CertifyReply) -> None:
        who = reply.member_name or _NAMES.get(reply.member_badge, f"badge {reply.member_badge}")
        if reply.certified:
            skills = ", ".join(reply.skills) or "nothing new"
            self._say(f"{reply.machine:<13} {who}: CERTIFIED at the machine ({skills})")
        else:
            self._say(
                f"{reply.machine:<13} {who}: certification refused ({reply.reason.value}) {reply.message}"
            )

    def _event(self, event: UsageEvent) -> None:
        if event.kind is EventKind.SESSION_STARTED and event.decided_by is DecidedBy.CACHE:
            who = _NAMES.get(event.badge or "", f"member {event.member_id}")
            self._say(
                f"{event.machine:<13} {who}: granted OFFLINE by the gateway, from the allowlist the "
                "server signed (no answer within 500 ms)"
            )
        elif event.kind is EventKind.RUNNING_STARTED:
            self._say(f"{event.machine:<13} current sensed: running")
        elif event.kind is EventKind.RUNNING_STOPPED:
            self._say(f"{event.machine:<13} current gone: idle (running {seconds(event.running_ms)} so far)")
        elif event.kind is EventKind.SESSION_ENDED:
            self.sessions_ended += 1
            why = _END_REASONS.get(event.end_reason or "", event.end_reason or "")
            self._say(
                f"{event.machine:<13} session ended ({why}): running {seconds(event.running_ms)}, "
                f"idle {seconds(event.idle_ms)}, powered {seconds(event.unlocked_ms)}"
            )

    def _status(self, gateway: str, status: GatewayStatus) -> None:
        seen = (status.state, status.boot)
        if self._statuses.get(gateway) == seen:
            return  # the same state again (a refresh, a backlog drained): nothing new to tell
        self._statuses[gateway] = seen
        if status.state is GatewayState.ONLINE:
            self._say(f"gateway {gateway} online (boot {status.boot}): {', '.join(status.machines)}")
        else:
            self._say(f"gateway {gateway} {status.state.value}")

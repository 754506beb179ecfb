"""The gateway's side of the MQTT contract: status, requests, certifications, events, commands.

Publishing happens straight from the caller's thread (paho writes to the
socket at once when it can, and ``TCP_NODELAY`` is set by
:func:`protocol.mqtt.make_client`): nothing on the way from a badge tap to the
broker waits for a poll. What arrives is decoded on paho's network thread and
handed to a :class:`LinkListener`; a malformed payload, a late or repeated
command is logged and dropped there, and no exception ever leaves a paho
callback (it would kill the network loop).
"""

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from controller.clock import Clock
from protocol.messages import (
    AccessReply,
    AccessRequest,
    CertifyReply,
    CertifyRequest,
    Command,
    EventAck,
    GatewayState,
    GatewayStatus,
    MachineState,
    Message,
    Telemetry,
    UsageEvent,
    decode,
    encode,
)
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import QOS, RETAINED, Channel, topic

log = logging.getLogger(__name__)

try:
    SOFTWARE = f"atelier-access/{version('atelier-access')}"
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    SOFTWARE = "atelier-access"

KEEPALIVE_S = 15
"""The broker declares the gateway lost about 1.5 times this after it falls silent."""

SEEN_COMMANDS = 1024
"""How many command ids are remembered to drop repeats (far more than a command's lifetime holds)."""


class LinkListener(Protocol):
    """What the gateway does with what arrives. Called on paho's network thread: be quick."""

    def on_connected(self) -> None: ...

    def on_reply(self, reply: AccessReply) -> None: ...

    def on_certify_reply(self, reply: CertifyReply) -> None: ...

    def on_ack(self, ack: EventAck) -> None: ...

    def on_command(self, command: Command) -> None: ...

    def on_allowlist(self, payload: bytes) -> None:
        """A signed allowlist snapshot, still to be verified (that takes the worker's time, not paho's)."""


class Link:
    """One gateway's MQTT connection. Call :meth:`start`, then publish; :meth:`stop` at the end."""

    def __init__(
        self,
        *,
        broker: BrokerURL,
        site: str,
        gateway_id: str,
        boot: int,
        machines: Sequence[str],
        clock: Clock,
        listener: LinkListener,
        software: str = SOFTWARE,
    ) -> None:
        self.broker = broker
        self.site = site
        self.gateway_id = gateway_id
        self.boot = boot
        self.machines = list(machines)
        self.software = software[:64]
        self._clock = clock
        self._listener = listener
        self._connected = threading.Event()
        self._stopping = False
        self._seen_commands: OrderedDict[str, None] = OrderedDict()
        self.backlog: int | None = None
        """Unacknowledged events, for the ``online`` and ``offline`` statuses: the gateway's
        worker keeps it current (the will, set once at connection, leaves it out)."""
        self.status_topic = self._topic(Channel.STATUS)
        self._inbound: dict[str, tuple[Channel, Callable[[bytes | bytearray], None]]] = {
            self._topic(channel): (channel, take)
            for channel, take in (
                (Channel.ACCESS_REPLY, self._take_reply),
                (Channel.CERTIFY_REPLY, self._take_certify_reply),
                (Channel.EVENTS_ACK, self._take_ack),
                (Channel.COMMAND, self._take_command),
                (Channel.ALLOWLIST, self._take_allowlist),
            )
        }
        # The client id is the gateway id: a second process claiming it takes the
        # session over, which the broker's ACL can tie to the gateway's credentials.
        self._client = make_client(broker, gateway_id)
        self._client.will_set(
            self.status_topic, encode(self._status(GatewayState.LOST)), qos=QOS[Channel.STATUS], retain=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def _topic(self, channel: Channel, machine: str | None = None) -> str:
        return topic(self.site, self.gateway_id, channel, machine)

    def _status(self, state: GatewayState) -> GatewayStatus:
        return GatewayStatus(
            state=state,
            boot=self.boot,
            software=self.software,
            machines=self.machines,
            at_ms=self._clock.wall_ms(),
            backlog=None if state is GatewayState.LOST else self.backlog,
        )

    # Lifecycle.

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself whenever the link drops."""
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Say ``offline`` (retained) and disconnect cleanly, so the last will is not sent."""
        self._stopping = True
        if self._connected.is_set():
            info = self._client.publish(
                self.status_topic, encode(self._status(GatewayState.OFFLINE)), qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as error:
                log.warning("could not say offline before disconnecting: %s", error)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def drop_connection(self) -> None:
        """Cut the TCP connection without a DISCONNECT, as a crash or a pulled cable would.

        The broker then publishes the last will, and paho reconnects. For tests and drills.
        """
        sock: Any = self._client.socket()
        if sock is not None:
            sock.shutdown(2)  # socket.SHUT_RDWR

    # Outbound. Each returns False when the message could not be handed to paho.

    def _publish(self, channel: Channel, message: Message, machine: str | None = None) -> bool:
        info = self._client.publish(
            self._topic(channel, machine), encode(message), qos=QOS[channel], retain=channel in RETAINED
        )
        if info.rc != paho.MQTT_ERR_SUCCESS:
            log.debug("publish on %s not sent now: %s", channel.value, paho.error_string(info.rc))
            return False
        return True

    def publish_status(self) -> bool:
        return self._publish(Channel.STATUS, self._status(GatewayState.ONLINE))

    def publish_request(self, request: AccessRequest) -> bool:
        return self._publish(Channel.ACCESS_REQUEST, request)

    def publish_certify(self, request: CertifyRequest) -> bool:
        return self._publish(Channel.CERTIFY_REQUEST, request)

    def publish_event(self, event: UsageEvent) -> bool:
        return self._publish(Channel.EVENTS, event)

    def publish_state(self, state: MachineState) -> bool:
        return self._publish(Channel.MACHINE_STATE, state, state.machine)

    def publish_telemetry(self, sample: Telemetry) -> bool:
        return self._publish(Channel.TELEMETRY, sample)

    # paho callbacks: never raise.

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused the connection: %s", self.broker, reason_code)
            return
        try:
            # A clean session forgets subscriptions: subscribe again on every connect.
            client.subscribe([(name, QOS[channel]) for name, (channel, _) in self._inbound.items()])
            self._connected.set()
            self.publish_status()
            log.info("connected to %s as %s (boot %d)", self.broker, self.gateway_id, self.boot)
            self._listener.on_connected()
        except Exception:
            log.exception("handling the connection to %s failed", self.broker)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stopping:
            log.warning("lost the broker %s: %s", self.broker, reason_code)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            inbound = self._inbound.get(message.topic)
            if inbound is None:
                log.debug("ignored a message on %s", message.topic)
                return
            inbound[1](message.payload)
        except ValueError as error:  # BadPayload, and anything else a payload can trigger
            log.warning("dropped a malformed message on %s: %s", message.topic, error)
        except Exception:
            log.exception("handling a message on %s failed", message.topic)

    def _take_reply(self, payload: bytes | bytearray) -> None:
        self._listener.on_reply(decode(AccessReply, payload))

    def _take_certify_reply(self, payload: bytes | bytearray) -> None:
        self._listener.on_certify_reply(decode(CertifyReply, payload))

    def _take_ack(self, payload: bytes | bytearray) -> None:
        self._listener.on_ack(decode(EventAck, payload))

    def _take_allowlist(self, payload: bytes | bytearray) -> None:
        self._listener.on_allowlist(bytes(payload))

    def _take_command(self, payload: bytes | bytearray) -> None:
        command = decode(Command, payload)
        now_ms = self._clock.wall_ms()
        if command.expires_at_ms <= now_ms:
            log.warning(
                "dropped command %s (%s): expired %d ms ago",
                command.command_id,
                command.action.value,
                now_ms - command.expires_at_ms,
            )
            return
        if command.command_id in self._seen_commands:
            log.info("dropped command %s: already carried out", command.command_id)
            return
        self._seen_commands[command.command_id] = None
        while len(self._seen_commands) > SEEN_COMMANDS:
            self._seen_commands.popitem(last=False)
        self._listener.on_command(command)

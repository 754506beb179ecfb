"""How every Atelier Access process connects to the broker.

Latency note: the Nagle algorithm on a client socket, meeting delayed ACKs on
the peer, holds small MQTT packets back by 40 ms or more, which is what a
naive paho-mqtt + Mosquitto set-up measures for a request/reply round trip.
Every client made here sets ``TCP_NODELAY`` on its socket, and the Mosquitto
configuration the project ships sets ``set_tcp_nodelay true`` for the broker's
side. See docs/benchmarks.md.
"""

import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from protocol.errors import ProtocolError


class BadBrokerURL(ProtocolError, ValueError):
    """An MQTT URL that cannot be used."""


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://`` for TLS."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "BrokerURL":
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise BadBrokerURL(f"MQTT URL must start with mqtt:// or mqtts://, not {url!r}")
        if not parts.hostname:
            raise BadBrokerURL(f"MQTT URL has no host: {url!r}")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as error:
            raise BadBrokerURL(f"MQTT URL has a bad port: {url!r}") from error
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    # A websocket wrapper or a non-TCP socket has no such option.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def make_client(
    url: BrokerURL,
    client_id: str,
    *,
    clean_session: bool = True,
    ca_file: str | None = None,
    tcp_nodelay: bool = True,
) -> paho.Client:
    """A paho client for ``url`` with our manners: MQTT 3.1.1, TCP_NODELAY, TLS if asked.

    The caller sets callbacks and a will, then calls ``connect_async`` (or
    ``connect``) with ``url.host`` and ``url.port``. ``tcp_nodelay=False``
    exists only so that a benchmark can show what Nagle's algorithm costs.
    """
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=paho.MQTTv311,
    )
    if tcp_nodelay:
        client.on_socket_open = _no_delay
    if url.username is not None:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    # Reconnect quickly after a broker restart, but do not hammer it.
    client.reconnect_delay_set(min_delay=1, max_delay=16)
    return client

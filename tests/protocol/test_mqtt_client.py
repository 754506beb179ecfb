"""``make_client``: the manners every Atelier Access process has on the wire."""

import socket
import struct
import threading

from protocol.messages import GatewayState, GatewayStatus, decode, encode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, topic
from tests.protocol.peers import TIMEOUT, Peer
from tests.services import Mosquitto, mosquitto


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_make_client_sets_tcp_nodelay_on_a_real_connection(broker: Mosquitto) -> None:
    with Peer(broker.url, "nodelay-check") as peer:
        assert peer.connect().is_failure is False
        assert _nodelay(peer.socket()) != 0


def test_tcp_nodelay_is_set_again_after_a_reconnection() -> None:
    with mosquitto() as own, Peer(own.url, "nodelay-reconnect") as peer:
        assert not peer.connect().is_failure
        first = peer.socket()
        peer.connected.clear()
        own.restart()
        assert peer.connected.wait(TIMEOUT + 16), "paho did not reconnect after the broker restarted"
        assert peer.socket() is not first
        assert _nodelay(peer.socket()) != 0


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def _read_connect(conn: socket.socket) -> bytes:
    """The variable header and payload of the MQTT CONNECT packet read from ``conn``."""
    assert _read_exactly(conn, 1) == b"\x10", "the first packet is not CONNECT"
    length, shift = 0, 0
    while True:
        byte = _read_exactly(conn, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return _read_exactly(conn, length)


def _field(packet: bytes, at: int) -> tuple[bytes, int]:
    (size,) = struct.unpack_from("!H", packet, at)
    return packet[at + 2 : at + 2 + size], at + 2 + size


def test_make_client_speaks_mqtt_3_1_1_with_the_gateway_id_and_credentials() -> None:
    """Read the CONNECT packet off a plain TCP socket: what a third-party broker receives."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        url = BrokerURL.parse(f"mqtt://gw-1:p%40ss@127.0.0.1:{port}")
        client = make_client(url, "gw-1")
        will = GatewayStatus(state=GatewayState.LOST, boot=7, at_ms=0)
        client.will_set(topic("site", "gw-1", Channel.STATUS), encode(will), qos=1, retain=True)
        server.settimeout(TIMEOUT)
        connecting = threading.Thread(target=client.connect, args=(url.host, url.port, 30))
        connecting.start()
        conn, _ = server.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            packet = _read_connect(conn)
            connecting.join(TIMEOUT)
            client_socket = client.socket()
            assert isinstance(client_socket, socket.socket)
            assert _nodelay(client_socket) != 0
        client_socket.close()

    name, at = _field(packet, 0)
    assert name == b"MQTT"
    assert packet[at] == 4, "protocol level 4 is MQTT 3.1.1"
    flags = packet[at + 1]
    assert flags & 0x02, "clean session"
    assert flags & 0x04, "a will"
    assert (flags >> 3) & 0x03 == 1, "will QoS 1"
    assert flags & 0x20, "will retained"
    assert flags & 0x80, "a user name"
    assert flags & 0x40, "a password"
    (keepalive,) = struct.unpack_from("!H", packet, at + 2)
    assert keepalive == 30
    client_id, at = _field(packet, at + 4)
    will_topic, at = _field(packet, at)
    will_payload, at = _field(packet, at)
    username, at = _field(packet, at)
    password, at = _field(packet, at)
    assert at == len(packet)
    assert client_id == b"gw-1"
    assert will_topic == b"atelier/v1/site/gw-1/status"
    assert decode(GatewayStatus, will_payload) == will
    assert (username, password) == (b"gw-1", b"p@ss")

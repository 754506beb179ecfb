"""hardware/mosquitto: the broker configuration and ACL the project ships, run for real."""

import queue
import socket
import ssl
import struct
from collections.abc import Iterator

import msgspec
import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.allowlist import (
    MAX_ALLOWLIST_BYTES,
    Allowlist,
    AllowlistEntry,
    AllowlistGrant,
    AllowlistMachine,
    VerifyKey,
    receive,
    sign,
)
from protocol.messages import (
    MAX_PAYLOAD_BYTES,
    CertificationLevel,
    GatewayState,
    GatewayStatus,
    Message,
    UsageEvent,
    decode,
    encode,
)
from protocol.topics import QOS, RETAINED, Channel, shared, subscription, topic
from tests.protocol.peers import TIMEOUT, Peer
from tests.protocol.samples import COMPLETE, GATEWAY_TO_SERVER, SERVER_TO_GATEWAY, T0
from tests.protocol.shipped_broker import ACL, CONFIG, SERVER_USER, ShippedBroker, directives, shipped_broker


def _topic(site: str, gateway: str, channel: Channel) -> str:
    return topic(site, gateway, channel, "brother-s7200" if channel is Channel.MACHINE_STATE else None)


def _publish(peer: Peer, site: str, gateway: str, channel: Channel, model: type[Message]) -> None:
    peer.publish(_topic(site, gateway, channel), encode(COMPLETE[model]), QOS[channel], channel in RETAINED)


# --- the file itself ----------------------------------------------------------------------------


def test_the_shipped_configuration_makes_the_choices_the_contract_needs() -> None:
    config = directives(CONFIG.read_text())
    assert config["listener"] == ["1883 127.0.0.1"], "plain MQTT on loopback only"
    assert config["set_tcp_nodelay"] == ["true"]
    assert config["allow_anonymous"] == ["false"]
    assert config["password_file"] == ["/etc/mosquitto/atelier.passwd"]
    assert config["acl_file"] == ["/etc/mosquitto/atelier.acl"]
    assert config["persistence"] == ["true"]
    assert config["persistence_location"] == ["/var/lib/mosquitto/"]
    assert 0 < int(config["max_queued_messages"][0]) <= 100_000
    assert "per_listener_settings" not in config, "authentication must cover every listener"


def _largest_publish(topic_: str, payload_bytes: int) -> int:
    # fixed header (1 + up to 4 length bytes) + topic length + topic + packet id + payload
    return 5 + 2 + len(topic_) + 2 + payload_bytes


def test_max_packet_size_leaves_room_for_the_largest_allowlist_on_the_longest_topic() -> None:
    max_packet_size = int(directives(CONFIG.read_text())["max_packet_size"][0])
    longest_machine_state = topic("s" * 64, "g" * 64, Channel.MACHINE_STATE, "m" * 64)
    assert _largest_publish(longest_machine_state, MAX_PAYLOAD_BYTES) <= max_packet_size
    # A gateway decodes a signed allowlist of up to MAX_ALLOWLIST_BYTES + 1024 (protocol.allowlist.receive).
    longest_allowlist = topic("s" * 64, "g" * 64, Channel.ALLOWLIST)
    largest = _largest_publish(longest_allowlist, MAX_ALLOWLIST_BYTES + 1024)
    assert largest + 64 * 1024 <= max_packet_size <= 2 * MAX_ALLOWLIST_BYTES, (
        "fits, with headroom, and no more"
    )


def test_the_tls_listener_is_shipped_commented_with_its_certificate_paths() -> None:
    lines = CONFIG.read_text().splitlines()
    assert "#listener 8883" in lines
    assert "#certfile /etc/mosquitto/certs/atelier.crt" in lines
    assert "#keyfile /etc/mosquitto/certs/atelier.key" in lines


def test_the_acl_lets_gateways_publish_and_read_exactly_their_channels() -> None:
    rules = directives(ACL.read_text())
    patterns = {tuple(rule.split(" ", 1)) for rule in rules["pattern"]}

    def own(channel: Channel) -> str:
        levels = subscription(channel).split("/")  # atelier/v1/+/+/<channel>
        levels[3] = "%u"
        return "/".join(levels)

    expected = {("write", own(c)) for c in GATEWAY_TO_SERVER} | {("read", own(c)) for c in SERVER_TO_GATEWAY}
    assert patterns == expected
    assert set(GATEWAY_TO_SERVER) | set(SERVER_TO_GATEWAY) == set(Channel)
    assert rules["user"] == [SERVER_USER]
    assert rules["topic"] == ["readwrite atelier/v1/#"]


# --- the real broker ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Iterator[ShippedBroker]:
    with shipped_broker() as broker:
        yield broker


@pytest.fixture
def server(shipped: ShippedBroker, site_id: str) -> Iterator[Peer]:
    with Peer(shipped.url(SERVER_USER), f"server-{site_id}") as peer:
        assert not peer.connect().is_failure
        yield peer


@pytest.fixture
def gateway(shipped: ShippedBroker) -> Iterator[Peer]:
    with Peer(shipped.url("gw-1"), "gw-1") as peer:
        assert not peer.connect().is_failure
        yield peer


def test_the_broker_listens_and_sets_no_delay_on_both_sides(server: Peer, shipped: ShippedBroker) -> None:
    assert server.socket().getpeername() == ("127.0.0.1", shipped.port)
    assert server.socket().getsockopt(6, 1) != 0  # IPPROTO_TCP, TCP_NODELAY
    assert "set_tcp_nodelay" not in shipped.log  # no complaint about any directive


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mqtt://127.0.0.1:{port}", "Not authorized"),
        ("mqtt://gw-1:wrong@127.0.0.1:{port}", "Not authorized"),
        ("mqtt://nobody:gw-1-secret@127.0.0.1:{port}", "Not authorized"),
    ],
    ids=["anonymous", "wrong password", "unknown user"],
)
def test_the_broker_refuses_whoever_does_not_authenticate(
    shipped: ShippedBroker, url: str, reason: str
) -> None:
    with Peer(url.format(port=shipped.port), "intruder") as peer:
        refusal = peer.connect()
    assert refusal.is_failure
    assert reason in str(refusal)


def _raw_connect(port: int, client_id: bytes, username: bytes, password: bytes) -> bytes:
    """Send a hand-made MQTT 3.1.1 CONNECT, as a C gateway would, and return the CONNACK."""

    def field(value: bytes) -> bytes:
        return struct.pack("!H", len(value)) + value

    flags = 0x80 | 0x40 | 0x02  # user name, password, clean session
    body = field(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body += field(client_id) + field(username) + field(password)
    assert len(body) < 128  # a one-byte remaining length
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        return sock.recv(4)


def test_a_hand_made_connect_is_accepted(shipped: ShippedBroker) -> None:
    assert _raw_connect(shipped.port, b"gw-1", b"gw-1", b"gw-1-secret") == b"\x20\x02\x00\x00"


def test_the_broker_refuses_an_empty_client_id(shipped: ShippedBroker) -> None:
    connack = _raw_connect(shipped.port, b"", b"gw-1", b"gw-1-secret")
    assert connack == b"\x20\x02\x00\x02", "CONNACK 2: identifier rejected"


def test_a_gateway_reaches_the_server_on_every_gateway_channel(
    server: Peer, gateway: Peer, site_id: str
) -> None:
    for channel in GATEWAY_TO_SERVER:
        server.subscribe(shared("server", subscription(channel, site_id)), QOS[channel])
    for channel, model in GATEWAY_TO_SERVER.items():
        _publish(gateway, site_id, "gw-1", channel, model)
        message = server.expect()
        assert message.topic == _topic(site_id, "gw-1", channel)
        assert decode(model, message.payload) == COMPLETE[model]


def test_a_gateway_cannot_publish_as_another_gateway(server: Peer, gateway: Peer, site_id: str) -> None:
    for channel in GATEWAY_TO_SERVER:
        server.subscribe(subscription(channel, site_id), QOS[channel])
    for channel, model in GATEWAY_TO_SERVER.items():
        _publish(gateway, site_id, "gw-2", channel, model)  # acknowledged, then dropped by the ACL
        _publish(gateway, site_id, "gw-1", channel, model)  # the same connection: it comes after
        assert server.expect().topic == _topic(site_id, "gw-1", channel)


def test_a_gateway_receives_its_own_orders_only(server: Peer, gateway: Peer, site_id: str) -> None:
    for channel in SERVER_TO_GATEWAY:
        gateway.subscribe(subscription(channel, site_id, "gw-1"), QOS[channel])
        gateway.subscribe(subscription(channel, site_id, "gw-2"), QOS[channel])  # granted, never delivered
    for channel, model in SERVER_TO_GATEWAY.items():
        _publish(server, site_id, "gw-2", channel, model)
        _publish(server, site_id, "gw-1", channel, model)
        message = gateway.expect()
        assert message.topic == _topic(site_id, "gw-1", channel)
        assert decode(model, message.payload) == COMPLETE[model]


def test_a_gateway_cannot_forge_a_reply_or_a_command_to_itself(
    server: Peer, gateway: Peer, site_id: str
) -> None:
    for channel, model in SERVER_TO_GATEWAY.items():
        gateway.subscribe(subscription(channel, site_id, "gw-1"), QOS[channel])
        _publish(gateway, site_id, "gw-1", channel, model)  # dropped: gateways only read these
        server.publish(_topic(site_id, "gw-1", channel), b"from the server", QOS[channel])
        assert gateway.expect().payload == b"from the server"


def test_the_server_workers_share_requests_without_duplicates(
    shipped: ShippedBroker, gateway: Peer, site_id: str
) -> None:
    arrived: queue.Queue[paho.MQTTMessage] = queue.Queue()
    filter_ = shared("server", subscription(Channel.EVENTS, site_id))
    workers = [Peer(shipped.url(SERVER_USER), f"server-{site_id}-{n}", messages=arrived) for n in (1, 2)]
    try:
        for worker in workers:
            assert not worker.connect().is_failure
            worker.subscribe(filter_)
        event = COMPLETE[UsageEvent]
        assert isinstance(event, UsageEvent)
        sent = [msgspec.structs.replace(event, seq=seq) for seq in range(1, 21)]
        for message in sent:
            gateway.publish(topic(site_id, "gw-1", Channel.EVENTS), encode(message))
        received = [decode(UsageEvent, arrived.get(timeout=TIMEOUT).payload) for _ in sent]
        assert sorted(e.seq for e in received) == [e.seq for e in sent]
    finally:
        for worker in workers:
            worker.close()


def test_the_largest_payload_on_the_longest_topic_goes_through(server: Peer) -> None:
    longest = topic("s" * 64, "g" * 64, Channel.MACHINE_STATE, "m" * 64)
    payload = b"x" * MAX_PAYLOAD_BYTES
    server.subscribe(longest)
    server.publish(longest, payload)
    assert server.expect().payload == payload
    server.publish(longest, b"", retain=True)  # clear the retained message


def _signed_allowlist(site: str, gateway: str, size: int) -> tuple[bytes, Allowlist, dict[str, VerifyKey]]:
    """A real signed allowlist whose payload is at least ``size`` bytes, and the key that verifies it."""
    key = Ed25519PrivateKey.generate()
    grant = AllowlistGrant(machine="brother-s7200", level=CertificationLevel.AUTONOMOUS, until_ms=T0 + 10**9)
    entries = [
        AllowlistEntry(badge=f"{n:014X}", member_id=n, member_name=f"Member number {n:06d}", grants=[grant])
        for n in range(1, size // 150 + 2)
    ]
    allowlist = Allowlist(
        site=site,
        gateway=gateway,
        version=1,
        issued_at_ms=T0,
        expires_at_ms=T0 + 7 * 86_400_000,
        machines=[AllowlistMachine(machine="brother-s7200")],
        entries=entries,
    )
    payload = encode(sign(allowlist, key, "site-1"))
    assert size <= len(payload) <= MAX_ALLOWLIST_BYTES
    return payload, allowlist, {"site-1": VerifyKey(key.public_key().public_bytes_raw())}


def test_a_one_mib_signed_allowlist_reaches_its_gateway_which_cannot_overwrite_it(
    shipped: ShippedBroker, server: Peer, site_id: str
) -> None:
    allowlist_topic = topic(site_id, "gw-1", Channel.ALLOWLIST)
    payload, allowlist, keys = _signed_allowlist(site_id, "gw-1", 1024 * 1024)
    server.publish(allowlist_topic, payload, QOS[Channel.ALLOWLIST], retain=True)
    try:
        with Peer(shipped.url("gw-1"), "gw-1") as gateway:
            assert not gateway.connect().is_failure
            # Acknowledged, then dropped by the ACL: gateways only read their allowlist.
            gateway.publish(allowlist_topic, b"forged", QOS[Channel.ALLOWLIST], retain=True)
            gateway.subscribe(allowlist_topic, QOS[Channel.ALLOWLIST])
            message = gateway.expect()
        assert message.retain
        assert len(message.payload) == len(payload)
        assert receive(message.payload, keys) == allowlist
    finally:
        server.publish(allowlist_topic, b"", retain=True)


def test_a_packet_over_max_packet_size_disconnects_its_sender(shipped: ShippedBroker, site_id: str) -> None:
    limit = int(directives(CONFIG.read_text())["max_packet_size"][0])
    with Peer(shipped.url("gw-1"), f"gw-1-{site_id}") as peer:
        assert not peer.connect().is_failure
        peer.client.publish(topic(site_id, "gw-1", Channel.EVENTS), b"x" * limit, 1)
        assert peer.disconnected.wait(TIMEOUT)
    assert "oversize packet" in shipped.log


def test_a_lost_gateway_leaves_a_retained_lost_status_with_its_boot(
    shipped: ShippedBroker, server: Peer, site_id: str
) -> None:
    status_topic = topic(site_id, "gw-1", Channel.STATUS)
    server.subscribe(status_topic)
    gateway = Peer(shipped.url("gw-1"), "gw-1")
    will = GatewayStatus(state=GatewayState.LOST, boot=5, machines=["brother-s7200"], at_ms=T0)
    gateway.client.will_set(status_topic, encode(will), QOS[Channel.STATUS], retain=True)
    assert not gateway.connect().is_failure
    birth = msgspec.structs.replace(will, state=GatewayState.ONLINE)
    gateway.publish(status_topic, encode(birth), QOS[Channel.STATUS], retain=True)
    assert decode(GatewayStatus, server.expect().payload) == birth

    gateway.kill_connection()
    assert decode(GatewayStatus, server.expect().payload) == will

    with Peer(shipped.url(SERVER_USER), f"late-{site_id}") as late:
        assert not late.connect().is_failure
        late.subscribe(status_topic)
        message = late.expect()
    assert message.retain
    assert decode(GatewayStatus, message.payload) == will
    server.publish(status_topic, b"", retain=True)


def test_retained_states_survive_a_broker_restart(site_id: str) -> None:
    with shipped_broker() as broker:
        status_topic = topic(site_id, "gw-1", Channel.STATUS)
        online = GatewayStatus(state=GatewayState.ONLINE, boot=9, at_ms=T0)
        with Peer(broker.url("gw-1"), "gw-1") as gateway:
            assert not gateway.connect().is_failure
            gateway.publish(status_topic, encode(online), retain=True)
        broker.stop()
        assert (broker.directory / "mosquitto.db").exists()
        broker.start()
        with Peer(broker.url(SERVER_USER), "server") as server:
            assert not server.connect().is_failure
            server.subscribe(status_topic)
            assert decode(GatewayStatus, server.expect().payload) == online


def test_the_commented_tls_listener_works_once_uncommented(site_id: str) -> None:
    with shipped_broker(tls=True) as broker:
        with Peer(broker.url("gw-1", tls=True), "gw-1", ca_file=broker.ca_file) as gateway:
            assert not gateway.connect().is_failure
            assert isinstance(gateway.socket(), ssl.SSLSocket)
            assert gateway.socket().getsockopt(6, 1) != 0  # TCP_NODELAY under TLS too
            with Peer(broker.url(SERVER_USER), "server") as server:  # plain, on loopback
                assert not server.connect().is_failure
                server.subscribe(subscription(Channel.EVENTS, site_id))
                gateway.publish(topic(site_id, "gw-1", Channel.EVENTS), encode(COMPLETE[UsageEvent]))
                assert decode(UsageEvent, server.expect().payload) == COMPLETE[UsageEvent]
        with Peer(f"mqtts://localhost:{broker.tls_port}", "anonymous", ca_file=broker.ca_file) as anonymous:
            assert anonymous.connect().is_failure
        untrusting = Peer(broker.url("gw-1", tls=True), "gw-1")  # the system CAs do not know ours
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusting.client.connect("localhost", untrusting.url.port)


def test_a_rebooted_gateway_taking_over_its_id_sends_the_stale_will_first(
    shipped: ShippedBroker, server: Peer, site_id: str
) -> None:
    """On one Mosquitto the stale will (lower boot) arrives before the new birth (docs, section 8)."""
    status_topic = topic(site_id, "gw-1", Channel.STATUS)
    server.subscribe(status_topic)

    def start_run(boot: int) -> Peer:
        run = Peer(shipped.url("gw-1"), "gw-1")
        will = GatewayStatus(state=GatewayState.LOST, boot=boot, at_ms=T0)
        run.client.will_set(status_topic, encode(will), QOS[Channel.STATUS], retain=True)
        assert not run.connect().is_failure
        run.publish(
            status_topic, encode(msgspec.structs.replace(will, state=GatewayState.ONLINE)), retain=True
        )
        return run

    old = start_run(1)
    old.client.loop_stop()  # dies silently: its connection stays open, as after a power cut
    new = start_run(2)
    seen = [decode(GatewayStatus, server.expect().payload) for _ in range(3)]
    assert [(s.state, s.boot) for s in seen] == [
        (GatewayState.ONLINE, 1),
        (GatewayState.LOST, 1),
        (GatewayState.ONLINE, 2),
    ]
    old.socket().close()
    new.close()
    server.publish(status_topic, b"", retain=True)

"""``atelier broker-config``: per-gateway credentials, the site's ACL and TLS, on a real Mosquitto.

The command writes a site's set (two gateways, ``gw-a`` and ``gw-b``); the broker runs the
configuration it wrote, with only ports and paths moved (tests/security/generated_broker.py).
Every client here connects with the credentials the command wrote for it.
"""

from __future__ import annotations

import signal
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cli.main import build_parser, main
from protocol.mqtt import BrokerURL
from protocol.topics import QOS, Channel, subscription, topic
from server.broker_config import MAX_PACKET_SIZE, SERVER_USER, check_password
from tests.protocol.peers import TIMEOUT, Peer
from tests.protocol.shipped_broker import ACL, CONFIG, directives, find_program
from tests.security.generated_broker import HOSTNAME, SITE, GeneratedSite, generated_site, make_set, read_env

GATEWAY_WRITES = (
    Channel.STATUS,
    Channel.MACHINE_STATE,
    Channel.ACCESS_REQUEST,
    Channel.EVENTS,
    Channel.TELEMETRY,
    Channel.CERTIFY_REQUEST,
)
GATEWAY_READS = (
    Channel.ACCESS_REPLY,
    Channel.EVENTS_ACK,
    Channel.COMMAND,
    Channel.CERTIFY_REPLY,
    Channel.ALLOWLIST,
)

BORROWED = "<gw-a's password>"
"""In a parametrised refusal: stands for gw-a's generated password."""


def _topic(gateway: str, channel: Channel, site: str = SITE) -> str:
    return topic(site, gateway, channel, "sew-1" if channel is Channel.MACHINE_STATE else None)


def test_every_channel_is_either_written_or_read_by_gateways() -> None:
    assert set(GATEWAY_WRITES) | set(GATEWAY_READS) == set(Channel)
    assert not set(GATEWAY_WRITES) & set(GATEWAY_READS)


# --- what the command writes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("broker-config") / "lyon"
    make_set(out, "gw-a", "gw-b")
    return out


def test_the_command_is_on_the_atelier_command_line() -> None:
    args = build_parser().parse_args(["broker-config", "--out", "x", "--site", "s", "--gateway", "g"])
    assert args.func.__module__ == "server.broker_config"
    assert (args.site, args.gateway, args.hostname) == ("s", ["g"], None)
    assert not args.client_certs
    assert not args.force


def test_secrets_are_for_their_owner_only(written: Path) -> None:
    modes = {
        str(path.relative_to(written)): stat.S_IMODE(path.stat().st_mode)
        for path in [written, *written.rglob("*")]
    }
    secrets = {
        "mosquitto/atelier.passwd",
        "mosquitto/certs/atelier.key",
        "ca/atelier-ca.key",
        "server/server.env",
        "gateways/gw-a/gateway.env",
        "gateways/gw-b/gateway.env",
    }
    directories = {name for name in modes if (written / name).is_dir()}
    assert secrets <= set(modes)
    assert {name: mode for name, mode in modes.items() if name in secrets | directories} == {
        name: 0o700 if name in directories else 0o600 for name in secrets | directories
    }
    public = set(modes) - secrets - directories
    assert public == {
        "INSTALL.txt",
        "mosquitto/mosquitto.conf",
        "mosquitto/atelier.acl",
        "mosquitto/certs/atelier-ca.crt",
        "mosquitto/certs/atelier.crt",
        "ca/atelier-ca.crt",
        "gateways/gw-a/atelier-ca.crt",
        "gateways/gw-b/atelier-ca.crt",
    }
    for name in public:
        assert b"PRIVATE KEY" not in (written / name).read_bytes()
        assert modes[name] == 0o644


def test_the_configuration_is_the_shipped_one_with_tls_on(written: Path) -> None:
    generated = directives((written / "mosquitto" / "mosquitto.conf").read_text())
    shipped = directives(CONFIG.read_text())
    assert generated["listener"] == ["1883 127.0.0.1", "8883"]
    assert generated["certfile"] == ["/etc/mosquitto/certs/atelier.crt"]
    assert generated["keyfile"] == ["/etc/mosquitto/certs/atelier.key"]
    assert generated["tls_version"] == ["tlsv1.2"]
    assert "require_certificate" not in generated
    # Authentication is per listener, the same on both, and the TLS one ties client ids to users.
    assert generated["per_listener_settings"] == ["true"]
    assert generated["use_username_as_clientid"] == ["true"]
    per_listener = {"allow_anonymous", "password_file", "acl_file", "allow_zero_length_clientid"}
    for name in per_listener:
        assert generated[name] == shipped[name] * 2
    assert generated["allow_anonymous"] == ["false", "false"]
    assert generated["max_packet_size"] == [str(MAX_PACKET_SIZE)]
    added = {"certfile", "keyfile", "tls_version", "per_listener_settings", "use_username_as_clientid"}
    assert {k: v for k, v in generated.items() if k not in added | per_listener | {"listener"}} == {
        k: v for k, v in shipped.items() if k not in per_listener | {"listener"}
    }
    # What follows a listener line applies to that listener (up to the next one).
    text = (written / "mosquitto" / "mosquitto.conf").read_text()
    loopback, tls = text.split("\nlistener 8883\n")
    loopback = loopback.split("\nlistener 1883 127.0.0.1\n")[1]
    for block in (loopback, tls):
        assert {"allow_anonymous": ["false"]}.items() <= directives(block).items()
        assert per_listener <= set(directives(block))
    assert "use_username_as_clientid" not in directives(loopback), "server processes keep their own ids"
    assert directives(tls)["use_username_as_clientid"] == ["true"]


def test_the_acl_is_the_shipped_one_confined_to_the_site(written: Path) -> None:
    generated = directives((written / "mosquitto" / "atelier.acl").read_text())
    shipped = directives(ACL.read_text())
    assert generated["user"] == shipped["user"] == [SERVER_USER]
    assert generated["topic"] == [f"readwrite atelier/v1/{SITE}/#"]
    confined = [rule.replace("atelier/v1/+/", f"atelier/v1/{SITE}/") for rule in shipped["pattern"]]
    assert sorted(generated["pattern"]) == sorted(confined)
    assert sorted(generated["pattern"]) == sorted(
        [f"write atelier/v1/{SITE}/%u/{subscription(c).split('/', 4)[4]}" for c in GATEWAY_WRITES]
        + [f"read atelier/v1/{SITE}/%u/{subscription(c).split('/', 4)[4]}" for c in GATEWAY_READS]
    )


def test_each_user_has_a_password_of_its_own_that_its_env_file_holds(written: Path) -> None:
    hashes = dict(
        line.split(":", 1) for line in (written / "mosquitto" / "atelier.passwd").read_text().splitlines()
    )
    urls = {
        SERVER_USER: BrokerURL.parse(read_env(written / "server" / "server.env")["ATELIER_MQTT_URL"]),
        **{
            gateway: BrokerURL.parse(
                read_env(written / "gateways" / gateway / "gateway.env")["ATELIER_MQTT_URL"]
            )
            for gateway in ("gw-a", "gw-b")
        },
    }
    assert set(hashes) == set(urls)
    passwords = {user: url.password for user, url in urls.items()}
    assert len(set(passwords.values())) == 3
    for user, url in urls.items():
        assert url.username == user
        assert url.password is not None
        assert len(url.password) >= 32
        assert hashes[user].startswith("$7$101$")
        assert check_password(hashes[user], url.password)
        assert not check_password(hashes[user], url.password + "x")
    server = urls[SERVER_USER]
    assert (server.tls, server.host, server.port) == (False, "127.0.0.1", 1883)
    assert (urls["gw-a"].tls, urls["gw-a"].host, urls["gw-a"].port) == (True, HOSTNAME, 8883)
    gateway_env = read_env(written / "gateways" / "gw-a" / "gateway.env")
    assert gateway_env["SSL_CERT_FILE"] == "/etc/atelier/atelier-ca.crt"
    assert "SSL_CERT_FILE" not in read_env(written / "server" / "server.env")


def test_password_hashes_are_the_ones_mosquitto_passwd_makes(tmp_path: Path) -> None:
    """Our check reads mosquitto_passwd's own hash: the two compute the same PBKDF2-SHA512."""
    passwd = tmp_path / "passwd"
    program = find_program("mosquitto_passwd", "mosquitto")
    subprocess.run([program, "-c", "-b", str(passwd), "gw-a", "s3cret-pass"], check=True, capture_output=True)
    user, stored = passwd.read_text().strip().split(":", 1)
    assert user == "gw-a"
    assert check_password(stored, "s3cret-pass")
    assert not check_password(stored, "s3cret-pasS")


def test_the_certificates_are_ecdsa_p256_for_the_host_names(tmp_path: Path) -> None:
    out = tmp_path / "site"
    argv = ["broker-config", "--out", str(out), "--site", SITE, "--gateway", "gw-a"]
    argv += ["--hostname", "192.168.1.10", "--hostname", "Broker.Atelier.example.", "--hostname", "fd00::1"]
    assert main(argv) == 0
    ca = x509.load_pem_x509_certificate((out / "ca" / "atelier-ca.crt").read_bytes())
    broker = x509.load_pem_x509_certificate((out / "mosquitto" / "certs" / "atelier.crt").read_bytes())
    for certificate in (ca, broker):
        key = certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert broker.issuer == ca.subject
    broker.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["192.168.1.10", "broker.atelier.example", "fd00::1"]
    url = BrokerURL.parse(read_env(out / "gateways" / "gw-a" / "gateway.env")["ATELIER_MQTT_URL"])
    assert (url.host, url.port) == ("192.168.1.10", 8883)
    ipv6 = tmp_path / "ipv6"
    argv = ["broker-config", "--out", str(ipv6), "--site", SITE, "--gateway", "gw-a", "--hostname", "fd00::1"]
    assert main(argv) == 0
    env = read_env(ipv6 / "gateways" / "gw-a" / "gateway.env")
    assert "@[fd00::1]:8883" in env["ATELIER_MQTT_URL"]
    assert BrokerURL.parse(env["ATELIER_MQTT_URL"]).host == "fd00::1"


def test_force_writes_a_new_set_over_an_old_one(tmp_path: Path) -> None:
    out = tmp_path / "site"
    make_set(out, "gw-a")
    before = (out / "gateways" / "gw-a" / "gateway.env").read_text()
    argv = ["broker-config", "--out", str(out), "--site", SITE, "--gateway", "gw-a", "--hostname", HOSTNAME]
    assert main([*argv, "--force"]) == 0
    after = (out / "gateways" / "gw-a" / "gateway.env").read_text()
    assert before != after
    assert stat.S_IMODE((out / "gateways" / "gw-a" / "gateway.env").stat().st_mode) == 0o600
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--site", "Lyon", "--gateway", "gw-a"], "invalid site id 'Lyon'"),
        (["--site", "lyon", "--gateway", "gw_a"], "invalid gateway id 'gw_a'"),
        (["--site", "lyon", "--gateway", "gw-a", "--gateway", "gw/+"], "invalid gateway id 'gw/+'"),
        (["--site", "lyon", "--gateway", SERVER_USER], "is the server's user name"),
        (["--site", "lyon", "--gateway", "gw-a", "--gateway", "gw-a"], "'gw-a' is given twice"),
        (
            ["--site", "lyon", "--gateway", "gw-a", "--hostname", "bad host"],
            "--hostname 'bad host' is neither",
        ),
        (["--site", "lyon", "--gateway", "gw-a", "--hostname", "*.example.org"], "is neither a host name"),
    ],
    ids=["site", "gateway", "wildcard", "server-user", "twice", "hostname", "wildcard-hostname"],
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    out = tmp_path / "site"
    assert main(["broker-config", "--out", str(out), *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("atelier broker-config: ")
    assert message in error
    assert error.count("\n") == 1
    assert not out.exists()


def test_an_existing_directory_is_refused_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    argv = ["broker-config", "--out", str(out), "--site", SITE, "--gateway", "gw-a", "--hostname", HOSTNAME]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert (
        error
        == f"atelier broker-config: {out} is not empty: choose a new directory, or --force to overwrite\n"
    )
    assert [path.name for path in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    assert main(argv) == 0, "an empty directory is fine"


def test_a_file_in_the_way_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    out.write_text("not a directory\n")
    argv = ["broker-config", "--out", str(out), "--site", SITE, "--gateway", "gw-a", "--hostname", HOSTNAME]
    assert main([*argv, "--force"]) == 2
    assert capsys.readouterr().err == f"atelier broker-config: {out} exists and is not a directory\n"
    assert out.read_text() == "not a directory\n"


# --- the real broker -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> Iterator[GeneratedSite]:
    with generated_site("gw-a", "gw-b") as running:
        yield running


def _connected(peer: Peer) -> Peer:
    assert not peer.connect().is_failure
    return peer


@pytest.fixture
def server(site: GeneratedSite) -> Iterator[Peer]:
    with Peer(site.url("server"), "atelier-server-test") as peer:
        yield _connected(peer)


@pytest.fixture
def gw_a(site: GeneratedSite) -> Iterator[Peer]:
    with Peer(site.url("gw-a"), "gw-a", ca_file=site.ca_file) as peer:
        yield _connected(peer)


@pytest.fixture
def gw_b(site: GeneratedSite) -> Iterator[Peer]:
    with Peer(site.url("gw-b"), "gw-b", ca_file=site.ca_file) as peer:
        yield _connected(peer)


def outcome(peer: Peer) -> str:
    """Try to connect: ``accepted``, the CONNACK's refusal, a TLS failure, or a drop before any CONNACK."""
    settled = threading.Event()
    on_connect, on_disconnect = peer.client.on_connect, peer.client.on_disconnect
    assert on_connect is not None
    assert on_disconnect is not None

    def connected(*args: Any) -> None:
        on_connect(*args)
        settled.set()

    def disconnected(*args: Any) -> None:
        on_disconnect(*args)
        settled.set()

    peer.client.on_connect = connected
    peer.client.on_disconnect = disconnected
    try:
        peer.client.connect(peer.url.host, peer.url.port, keepalive=30)
    except ssl.SSLError as error:
        return f"TLS: {error}"
    peer.client.loop_start()
    assert settled.wait(TIMEOUT), "neither a CONNACK nor a disconnection"
    if not peer.connected.is_set():
        return "dropped before CONNACK"
    assert peer.connack is not None
    return "accepted" if not peer.connack.is_failure else f"refused: {peer.connack}"


def _tls_peer(
    url: BrokerURL, client_id: str, ca_file: str, certificate: tuple[str, str] | None = None
) -> Peer:
    """A client over TLS that may present a client certificate (make_client cannot)."""
    peer = Peer(BrokerURL(url.host, url.port, False, url.username, url.password), client_id)
    certfile, keyfile = certificate or (None, None)
    peer.client.tls_set(ca_certs=ca_file, certfile=certfile, keyfile=keyfile, cert_reqs=ssl.CERT_REQUIRED)
    return peer


def test_the_broker_takes_the_generated_configuration_without_complaint(site: GeneratedSite) -> None:
    log = site.broker.log
    assert f"Opening ipv4 listen socket on port {site.tls_port}" in log
    assert "Error" not in log
    assert "Warning" not in log


def test_the_server_connects_on_loopback_with_its_generated_url(server: Peer, site: GeneratedSite) -> None:
    assert server.socket().getpeername() == ("127.0.0.1", site.port)
    assert not isinstance(server.socket(), ssl.SSLSocket)


def test_a_gateway_connects_as_the_daemon_would_with_its_env_file(
    site: GeneratedSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway daemon passes no CA file: SSL_CERT_FILE from its env file makes it trust the site's CA."""
    env = site.env("gw-a")
    assert env["SSL_CERT_FILE"] == "/etc/atelier/atelier-ca.crt"
    monkeypatch.setenv("SSL_CERT_FILE", site.ca_file)  # the installed path, moved like the ports
    with Peer(site.url("gw-a"), "gw-a") as gateway:  # no ca_file, as controller/link.py
        assert outcome(gateway) == "accepted"
        assert isinstance(gateway.socket(), ssl.SSLSocket)
        assert gateway.socket().getpeername() == ("127.0.0.1", site.tls_port)


def test_gateway_a_reaches_the_server_on_its_own_channels(server: Peer, gw_a: Peer) -> None:
    for channel in GATEWAY_WRITES:
        server.subscribe(subscription(channel, SITE), QOS[channel])
    for channel in GATEWAY_WRITES:
        gw_a.publish(_topic("gw-a", channel), f"gw-a {channel}".encode(), QOS[channel])
        message = server.expect()
        assert (message.topic, message.payload) == (_topic("gw-a", channel), f"gw-a {channel}".encode())


def test_gateway_a_cannot_publish_as_gateway_b(server: Peer, gw_a: Peer) -> None:
    for channel in GATEWAY_WRITES:
        server.subscribe(subscription(channel, SITE), QOS[channel])
    for channel in GATEWAY_WRITES:
        # Acknowledged, then dropped by the ACL; A's own message, after it on the same
        # connection, is the next one the server sees.
        gw_a.publish(_topic("gw-b", channel), b"forged by gw-a", QOS[channel])
        gw_a.publish(_topic("gw-a", channel), b"gw-a itself", QOS[channel])
        message = server.expect()
        assert (message.topic, message.payload) == (_topic("gw-a", channel), b"gw-a itself")


def test_gateway_a_cannot_publish_under_another_site(site: GeneratedSite, gw_a: Peer, server: Peer) -> None:
    server.subscribe(subscription(Channel.EVENTS, SITE), QOS[Channel.EVENTS])
    gw_a.publish(_topic("gw-a", Channel.EVENTS, site="paris"), b"elsewhere")  # dropped
    gw_a.publish(_topic("gw-a", Channel.EVENTS), b"here")
    assert server.expect().payload == b"here"


def test_gateway_a_never_receives_what_is_sent_to_gateway_b(server: Peer, gw_a: Peer, gw_b: Peer) -> None:
    for channel in GATEWAY_READS:
        gw_a.subscribe(_topic("gw-a", channel), QOS[channel])
        gw_a.subscribe(_topic("gw-b", channel), QOS[channel])  # granted, never delivered
        gw_b.subscribe(_topic("gw-b", channel), QOS[channel])
    gw_a.subscribe("atelier/v1/#")  # granted too, and never delivers B's either
    for channel in GATEWAY_READS:
        server.publish(_topic("gw-b", channel), f"for gw-b {channel}".encode(), QOS[channel])
        assert gw_b.expect().payload == f"for gw-b {channel}".encode()  # it was sent
        server.publish(_topic("gw-a", channel), f"for gw-a {channel}".encode(), QOS[channel])
        # B's came first: had A been allowed to read it, it would be A's next message.
        assert gw_a.expect().payload == f"for gw-a {channel}".encode()
    assert gw_a.messages.empty()


def test_a_gateway_cannot_forge_what_the_server_sends_it(server: Peer, gw_a: Peer) -> None:
    for channel in GATEWAY_READS:
        gw_a.subscribe(_topic("gw-a", channel), QOS[channel])
        gw_a.publish(_topic("gw-a", channel), b"forged", QOS[channel])  # dropped: gateways only read these
        server.publish(_topic("gw-a", channel), b"from the server", QOS[channel])
        assert gw_a.expect().payload == b"from the server"


def test_a_one_mib_retained_allowlist_reaches_its_gateway_only(
    site: GeneratedSite, server: Peer, gw_b: Peer
) -> None:
    allowlist_a = _topic("gw-a", Channel.ALLOWLIST)
    payload = bytes(range(256)) * 4096  # 1 MiB
    server.publish(allowlist_a, payload, QOS[Channel.ALLOWLIST], retain=True)
    try:
        gw_b.subscribe(allowlist_a)  # retained, but not for B: never delivered
        gw_b.subscribe(_topic("gw-b", Channel.ALLOWLIST))
        server.publish(_topic("gw-b", Channel.ALLOWLIST), b"gw-b's own")
        assert gw_b.expect().payload == b"gw-b's own"
        with Peer(site.url("gw-a"), "gw-a", ca_file=site.ca_file) as gw_a:
            assert outcome(gw_a) == "accepted"
            gw_a.publish(allowlist_a, b"forged", QOS[Channel.ALLOWLIST], retain=True)  # dropped
            gw_a.subscribe(allowlist_a, QOS[Channel.ALLOWLIST])
            message = gw_a.expect()
        assert message.retain
        assert message.payload == payload
    finally:
        server.publish(allowlist_a, b"", retain=True)


@pytest.mark.parametrize(
    ("who", "username", "password", "tls"),
    [
        ("anonymous on TLS", None, None, True),
        ("anonymous on loopback", None, None, False),
        ("gw-a with a wrong password", "gw-a", "wrong", True),
        ("gw-a's password as gw-b", "gw-b", BORROWED, True),
        ("gw-a's password as the server", SERVER_USER, BORROWED, False),
        ("an unknown user", "gw-c", BORROWED, True),
    ],
    ids=lambda value: str(value).replace(" ", "-") if isinstance(value, str) else None,
)
def test_whoever_does_not_authenticate_is_refused(
    site: GeneratedSite, who: str, username: str | None, password: str | None, tls: bool
) -> None:
    port = site.tls_port if tls else site.port
    password = site.password("gw-a") if password == BORROWED else password
    url = BrokerURL(HOSTNAME if tls else "127.0.0.1", port, tls, username, password)
    with Peer(url, username or "intruder", ca_file=site.ca_file) as peer:
        assert outcome(peer) == "refused: Not authorized"


def test_a_gateway_cannot_take_over_another_client_by_its_client_id(
    site: GeneratedSite, server: Peer, gw_b: Peer
) -> None:
    """On the TLS listener a client's id is its user name: claiming gw-b's or the server's id does nothing."""
    seen = len(site.broker.log)
    for victim in ("gw-b", "atelier-server-test"):
        with Peer(site.url("gw-a"), victim, ca_file=site.ca_file) as impostor:
            assert outcome(impostor) == "accepted"
            # Both victims are still connected: each still gets what is sent to it.
            gw_b.subscribe(_topic("gw-b", Channel.COMMAND))
            server.publish(_topic("gw-b", Channel.COMMAND), f"after {victim}".encode())
            assert gw_b.expect().payload == f"after {victim}".encode()
    assert not gw_b.disconnected.is_set()
    assert not server.disconnected.is_set()
    log = site.broker.log[seen:]
    assert log.count("as gw-a (p2, c1, k30, u'gw-a')") == 2, "each impostor got gw-a as its client id"
    assert "already connected, closing old connection" not in log


def test_a_stolen_gateway_is_locked_out_by_changing_its_password() -> None:
    """docs/security.md: mosquitto_passwd, then reload. The gateway is disconnected and cannot come back."""
    with generated_site("gw-a", "gw-b") as site:
        stolen = Peer(site.url("gw-b"), "gw-b", ca_file=site.ca_file)
        with stolen, Peer(site.url("gw-a"), "gw-a", ca_file=site.ca_file) as gw_a:
            assert outcome(stolen) == "accepted"
            assert outcome(gw_a) == "accepted"
            program = find_program("mosquitto_passwd", "mosquitto")
            passwd = site.out / "mosquitto" / "atelier.passwd"
            subprocess.run(
                [program, "-b", str(passwd), "gw-b", "a-new-password"], check=True, capture_output=True
            )
            assert site.broker.process is not None
            site.broker.process.send_signal(signal.SIGHUP)  # systemctl reload mosquitto
            assert stolen.disconnected.wait(TIMEOUT), "the stolen gateway's connection is closed"
            gw_a.publish(_topic("gw-a", Channel.EVENTS), b"still here")  # acknowledged: A was not disturbed
            assert not gw_a.disconnected.is_set()
        with Peer(site.url("gw-b"), "gw-b", ca_file=site.ca_file) as old_password:
            assert outcome(old_password) == "refused: Not authorized"
        renewed = BrokerURL(HOSTNAME, site.tls_port, True, "gw-b", "a-new-password")
        with Peer(renewed, "gw-b", ca_file=site.ca_file) as new_password:
            assert outcome(new_password) == "accepted"


def test_tls_needs_the_site_ca_and_the_name_in_the_certificate(
    site: GeneratedSite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = site.url("gw-a")
    with Peer(url, "gw-a") as system_cas_only:
        assert "certificate verify failed: unable to get local issuer certificate" in outcome(system_cas_only)
    other_site = tmp_path_factory.mktemp("other-site") / "out"
    make_set(other_site, "gw-a")
    with Peer(url, "gw-a", ca_file=str(other_site / "gateways" / "gw-a" / "atelier-ca.crt")) as other_ca:
        assert "certificate verify failed" in outcome(other_ca)
    by_address = BrokerURL("127.0.0.1", url.port, True, url.username, url.password)  # not in the certificate
    with Peer(by_address, "gw-a", ca_file=site.ca_file) as wrong_name:
        assert "IP address mismatch" in outcome(wrong_name)
    with Peer(url, "gw-a", ca_file=site.ca_file) as right:
        assert outcome(right) == "accepted"


# --- with client certificates --------------------------------------------------------------------


@pytest.fixture(scope="module")
def certified_site() -> Iterator[GeneratedSite]:
    with generated_site("gw-a", "gw-b", client_certs=True) as running:
        yield running


def test_client_certificates_are_made_for_each_gateway(certified_site: GeneratedSite) -> None:
    conf = directives((certified_site.out / "mosquitto" / "mosquitto.conf").read_text())
    assert conf["require_certificate"] == ["true"]
    assert conf["cafile"] == ["/etc/mosquitto/certs/atelier-ca.crt"]
    assert "use_identity_as_username" not in conf, "passwords stay checked"
    for gateway in ("gw-a", "gw-b"):
        certfile, keyfile = certified_site.client_cert(gateway)
        certificate = x509.load_pem_x509_certificate(Path(certfile).read_bytes())
        assert certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == gateway
        assert stat.S_IMODE(Path(keyfile).stat().st_mode) == 0o600


def test_a_gateway_with_its_certificate_and_password_connects(certified_site: GeneratedSite) -> None:
    certificate = certified_site.client_cert("gw-a")
    with _tls_peer(certified_site.url("gw-a"), "gw-a", certified_site.ca_file, certificate) as gateway:
        assert outcome(gateway) == "accepted"


def test_a_client_without_a_certificate_is_refused(certified_site: GeneratedSite) -> None:
    seen = len(certified_site.broker.log)
    with _tls_peer(certified_site.url("gw-a"), "gw-a", certified_site.ca_file) as gateway:
        assert outcome(gateway) == "dropped before CONNACK"
    assert "peer did not return a certificate" in certified_site.broker.log[seen:]


def test_a_certificate_from_another_ca_is_refused(
    certified_site: GeneratedSite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other_site = tmp_path_factory.mktemp("other-certified-site") / "out"
    make_set(other_site, "gw-a", client_certs=True)
    foreign = (
        str(other_site / "gateways" / "gw-a" / "gateway.crt"),
        str(other_site / "gateways" / "gw-a" / "gateway.key"),
    )
    seen = len(certified_site.broker.log)
    with _tls_peer(certified_site.url("gw-a"), "gw-a", certified_site.ca_file, foreign) as gateway:
        assert outcome(gateway) == "dropped before CONNACK"
    assert "certificate verify failed" in certified_site.broker.log[seen:]


def test_a_certificate_does_not_replace_the_password(certified_site: GeneratedSite) -> None:
    url = certified_site.url("gw-a")
    wrong = BrokerURL(url.host, url.port, True, "gw-a", "wrong")
    with _tls_peer(wrong, "gw-a", certified_site.ca_file, certified_site.client_cert("gw-a")) as gateway:
        assert outcome(gateway) == "refused: Not authorized"
    as_b = BrokerURL(url.host, url.port, True, "gw-b", url.password)
    with _tls_peer(as_b, "gw-b", certified_site.ca_file, certified_site.client_cert("gw-a")) as gateway:
        assert outcome(gateway) == "refused: Not authorized"


def test_the_server_on_loopback_needs_no_certificate(certified_site: GeneratedSite) -> None:
    with Peer(certified_site.url("server"), "atelier-server-test") as server:
        assert outcome(server) == "accepted"

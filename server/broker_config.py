"""``atelier broker-config``: a site's Mosquitto set-up, with credentials of its own for each gateway.

The command writes, into a new directory, everything a site installs on its broker and hands
to its server and gateways:

- ``mosquitto/``: ``mosquitto.conf`` (``hardware/mosquitto/atelier.conf`` with its TLS listener
  on, where a client's id is its user name), ``atelier.passwd`` (one random password per gateway and one for ``atelier-server``, hashed
  as ``mosquitto_passwd`` does), ``atelier.acl`` (the shipped ACL, confined to the site) and
  ``certs/`` (the site's CA certificate, the broker's certificate for its host names, its key);
- ``ca/``: the CA's key and certificate. The key signs certificates only: keep it off the broker;
- ``server/server.env``: the server's ``ATELIER_MQTT_URL`` (plain MQTT on the broker's loopback);
- ``gateways/<id>/``: each gateway's ``gateway.env`` (``ATELIER_MQTT_URL`` over TLS, and
  ``SSL_CERT_FILE`` naming the CA certificate beside it), and with ``--client-certs`` its own
  client certificate and key;
- ``INSTALL.txt``: where each file goes.

The gateways are named on the command line (``--gateway``, repeated), not read from the
server's database: the command runs where the broker is, which need not see the database, and
a site adds a gateway to the broker before the gateway first connects. Secrets are written with
mode 0600, directories 0700; nothing is ever printed. See docs/security.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import os
import re
import secrets
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol.allowlist import MAX_ALLOWLIST_BYTES
from protocol.errors import BadTopic
from protocol.ids import check_id
from protocol.topics import ROOT

SERVER_USER = "atelier-server"
"""The server's user name on the broker; the ACL gives it the whole site."""

MQTT_PORT = 1883
MQTTS_PORT = 8883

MAX_PACKET_SIZE = 5 * 1024 * 1024
"""The broker's ``max_packet_size``. The largest packet is a signed allowlist (retained, on
``.../<gateway>/allowlist``): a gateway accepts up to MAX_ALLOWLIST_BYTES + 1 KiB of it (the key
id and the signature beside the snapshot), and its topic and fixed header add under 200 bytes.
The rest, almost 1 MiB, is headroom: an oversized snapshot is then refused by the gateway, with
a log line, rather than costing the server its broker connection."""

PBKDF2_ITERATIONS = 101
"""What ``mosquitto_passwd`` (2.0) uses. The passwords made here are 32 random URL-safe
characters (192 bits), out of reach of any guessing, so more iterations would only slow every
CONNECT."""

VALID_DAYS = 3650
"""How long the CA and the certificates it signs are valid: ten years, so that a workshop
is not cut off by an expiry nobody remembered. Renewal is running the command again."""

CLOCK_SLACK = timedelta(days=1)
"""Certificates are valid from a day before they are made: a Raspberry Pi has no real-time
clock, and boots with the time it last saved until NTP corrects it."""

# Where the files go once installed; the generated files name these paths.
ETC_MOSQUITTO = PurePosixPath("/etc/mosquitto")
ETC_ATELIER = PurePosixPath("/etc/atelier")
PASSWORD_FILE = ETC_MOSQUITTO / "atelier.passwd"
ACL_FILE = ETC_MOSQUITTO / "atelier.acl"
CA_CERT_NAME = "atelier-ca.crt"
BROKER_CA_FILE = ETC_MOSQUITTO / "certs" / CA_CERT_NAME
BROKER_CERT_FILE = ETC_MOSQUITTO / "certs" / "atelier.crt"
BROKER_KEY_FILE = ETC_MOSQUITTO / "certs" / "atelier.key"
GATEWAY_CA_FILE = ETC_ATELIER / CA_CERT_NAME
GATEWAY_CERT_FILE = ETC_ATELIER / "gateway.crt"
GATEWAY_KEY_FILE = ETC_ATELIER / "gateway.key"

# A gateway writes on these channels of its own, and reads these (docs/protocol.md, section 4).
GATEWAY_WRITES = ("status", "machine/+", "access/request", "events", "telemetry", "certify/request")
GATEWAY_READS = ("access/reply", "events/ack", "command", "certify/reply", "allowlist")

SECRET = 0o600
PUBLIC = 0o644

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class BrokerConfigError(ValueError):
    """Input the command refuses; the message says which and why, on one line."""


@dataclass(frozen=True, slots=True)
class Request:
    """What to generate, once checked."""

    site: str
    gateways: tuple[str, ...]
    hostnames: tuple[str, ...]
    """The names gateways reach the broker by; the first is the one in their URL."""
    client_certs: bool = False


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    content: bytes
    mode: int


# --- checking the input ---------------------------------------------------------------------------


def check_hostname(value: str) -> str:
    """A DNS name (lower-cased) or an IP address, as the broker's certificate will name it."""
    name = value.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise BrokerConfigError(
            f"--hostname {value!r} is neither a host name (a-z, 0-9, '-', '.') nor an IP address"
        )
    return name


def check_request(
    site: str, gateways: Sequence[str], hostnames: Sequence[str], *, client_certs: bool = False
) -> Request:
    """The request, or :class:`BrokerConfigError` naming the first thing wrong with it."""
    try:
        check_id(site, "site id")
        for gateway in gateways:
            check_id(gateway, "gateway id")
    except BadTopic as error:
        raise BrokerConfigError(str(error)) from None
    if not gateways:
        raise BrokerConfigError("name at least one gateway with --gateway ID")
    seen: set[str] = set()
    for gateway in gateways:
        if gateway == SERVER_USER:
            raise BrokerConfigError(f"gateway id {gateway!r} is the server's user name on the broker")
        if gateway in seen:
            raise BrokerConfigError(f"gateway id {gateway!r} is given twice")
        seen.add(gateway)
    names = tuple(dict.fromkeys(check_hostname(name) for name in hostnames))
    if not names:
        raise BrokerConfigError("name the broker's host with --hostname")
    return Request(site=site, gateways=tuple(gateways), hostnames=names, client_certs=client_certs)


# --- Mosquitto's files ----------------------------------------------------------------------------


def password_hash(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``password`` hashed as Mosquitto 2.0 stores it: ``$7$<iterations>$<salt>$<PBKDF2-SHA512>``."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash of :func:`password_hash` (or of mosquitto_passwd)."""
    try:
        _, seven, iterations, salt, digest = stored.split("$")
        if seven != "7":
            return False
        expected = base64.b64decode(digest, validate=True)
        found = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt, validate=True), int(iterations), len(expected)
        )
    except ValueError:
        return False
    return secrets.compare_digest(found, expected)


def password_file(passwords: Mapping[str, str]) -> str:
    return "".join(f"{user}:{password_hash(password)}\n" for user, password in passwords.items())


def acl(site: str) -> str:
    """hardware/mosquitto/atelier.acl, with the site in place of its ``+``."""
    own = f"{ROOT}/{site}/%u"
    lines = [
        f"# Mosquitto ACL for site {site}, made by `atelier broker-config`: /etc/mosquitto/atelier.acl.",
        "# It is hardware/mosquitto/atelier.acl confined to this site. Mosquitto grants nothing",
        "# that is not listed here.",
        "",
        "# The server (every process of it, shared subscriptions included) reads and writes the site.",
        f"user {SERVER_USER}",
        f"topic readwrite {ROOT}/{site}/#",
        "",
        "# Every gateway logs in with its gateway id as user name, and may only publish and",
        "# subscribe below its own id. (Patterns apply to every user; for the server they add nothing.)",
        *(f"pattern write {own}/{channel}" for channel in GATEWAY_WRITES),
        *(f"pattern read {own}/{channel}" for channel in GATEWAY_READS),
    ]
    return "\n".join(lines) + "\n"


def mosquitto_conf(request: Request, made_on: datetime) -> str:
    """hardware/mosquitto/atelier.conf with the TLS listener on and the site's certificates."""
    if request.client_certs:
        client_certs = f"""\
# Every client of this listener must also present a certificate signed by the site's CA,
# and its password is still checked: a copied password alone does not connect, and
# changing a gateway's password still locks it out. (use_identity_as_username is off on
# purpose: it would stop checking passwords here, and revoking a certificate would then
# need a certificate revocation list.)
cafile {BROKER_CA_FILE}
require_certificate true
"""
    else:
        client_certs = """\
# Client certificates are not required (atelier broker-config --client-certs asks for
# them): gateways authenticate with their password, sent inside TLS.
"""
    authentication = f"""\
allow_anonymous false
password_file {PASSWORD_FILE}
acl_file {ACL_FILE}
allow_zero_length_clientid false"""
    return f"""\
# Mosquitto 2.x configuration for site {request.site}, made by `atelier broker-config` on
# {made_on:%Y-%m-%d}. Install it as /etc/mosquitto/mosquitto.conf, with the rest of the
# directory it came in (see INSTALL.txt beside it). It is hardware/mosquitto/atelier.conf with
# its TLS listener on, and client ids tied to user names on it; every choice is explained in
# hardware/mosquitto/README.md, and what it protects against in docs/security.md.

# --- Listeners and who may connect on each ------------------------------------

# Authentication is set for each listener, so that the TLS one can tie client ids to user
# names (below). On both: every client authenticates, the server as {SERVER_USER}, each
# gateway with its gateway id as user name and a password of its own (atelier.passwd); the
# ACL confines each gateway to the topics of its own id on this site (atelier.acl); a client
# without a client id is a misconfigured client.
per_listener_settings true

# Plain MQTT on loopback only: the server on this host.
listener {MQTT_PORT} 127.0.0.1
{authentication}

# MQTT over TLS, on every interface, for the gateways (mqtts://<id>:<password>@{request.hostnames[0]}:{MQTTS_PORT}).
# The broker's certificate names {", ".join(request.hostnames)}, signed by the site's own CA.
listener {MQTTS_PORT}
{authentication}
# A client's id here is its user name, whatever it asked for: a gateway cannot take over
# (disconnect) another gateway's connection, or the server's, by using its client id.
use_username_as_clientid true
certfile {BROKER_CERT_FILE}
keyfile {BROKER_KEY_FILE}
tls_version tlsv1.2
{client_certs}
# --- Latency ------------------------------------------------------------------

# Disable Nagle's algorithm on the broker's client sockets: without it a tap -> decision
# round trip costs 40-90 ms instead of well under 2 ms.
set_tcp_nodelay true

# --- Limits -------------------------------------------------------------------

# The largest packet is the signed allowlist the server publishes (retained) for each
# gateway: a gateway accepts up to {MAX_ALLOWLIST_BYTES} + 1024 bytes of it, and its topic
# and header add under 200. {MAX_PACKET_SIZE} leaves about 1 MiB of headroom. Every other
# payload stays under 4096 bytes; the server refuses larger ones from gateways.
max_packet_size {MAX_PACKET_SIZE}
max_queued_messages 10000
queue_qos0_messages false
persistent_client_expiration 7d

# --- Persistence --------------------------------------------------------------

persistence true
persistence_location /var/lib/mosquitto/
autosave_interval 300

# --- Logging ------------------------------------------------------------------

log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
"""


# --- certificates ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Signed:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)


def _name(site: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Atelier Access"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    # ECDSA P-256: what every TLS stack a gateway may run (OpenSSL, mbedTLS, wolfSSL) accepts.
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(site: str, now: datetime) -> _Signed:
    key = _new_key()
    name = _name(site, f"Atelier Access {site} CA")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SLACK)
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Signed(key, certificate)


def _leaf(
    ca: _Signed,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    now: datetime,
    alternative_names: Iterable[x509.GeneralName] = (),
) -> _Signed:
    key = _new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SLACK)
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    names = list(alternative_names)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _Signed(key, builder.sign(ca.key, hashes.SHA256()))


def _general_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def make_broker_certificate(ca: _Signed, site: str, hostnames: Sequence[str], now: datetime) -> _Signed:
    """The broker's certificate: its host names in subjectAltName, where clients look them up."""
    return _leaf(
        ca,
        _name(site, hostnames[0]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        now,
        [_general_name(name) for name in hostnames],
    )


def make_client_certificate(ca: _Signed, site: str, gateway: str, now: datetime) -> _Signed:
    """A gateway's certificate; its common name is the gateway id (its user name on the broker)."""
    return _leaf(ca, _name(site, gateway), ExtendedKeyUsageOID.CLIENT_AUTH, now)


# --- the whole set --------------------------------------------------------------------------------


def new_password() -> str:
    """32 URL-safe characters: nothing to percent-encode in an MQTT URL or escape in an env file."""
    return secrets.token_urlsafe(24)


def _url_host(hostname: str) -> str:
    return f"[{hostname}]" if ":" in hostname else hostname


def server_env(request: Request, password: str) -> str:
    return f"""\
# The server of site {request.site} on the broker's host: add these lines to
# /etc/atelier/server.env (mode 0600). Made by `atelier broker-config`; keep it secret.
# A server on another host connects over TLS instead; see docs/security.md.
ATELIER_MQTT_URL=mqtt://{SERVER_USER}:{quote(password, safe="")}@127.0.0.1:{MQTT_PORT}
"""


def gateway_env(request: Request, gateway: str, password: str) -> str:
    url = f"mqtts://{gateway}:{quote(password, safe='')}@{_url_host(request.hostnames[0])}:{MQTTS_PORT}"
    certificates = (
        f"# Its client certificate and key, required by the broker: {GATEWAY_CERT_FILE}, {GATEWAY_KEY_FILE}.\n"
        if request.client_certs
        else ""
    )
    return f"""\
# Gateway {gateway} of site {request.site}: install as /etc/atelier/gateway.env on the gateway,
# mode 0600, with {CA_CERT_NAME} beside it. Made by `atelier broker-config`; keep it secret.
ATELIER_MQTT_URL={url}
# The gateway checks the broker's certificate against the site's CA, and only against it.
SSL_CERT_FILE={GATEWAY_CA_FILE}
{certificates}"""


def install_text(request: Request, ca: _Signed) -> str:
    gateways = "\n".join(
        f"  {f'gateways/{gateway}/':<17} -> /etc/atelier/ on gateway {gateway}"
        for gateway in request.gateways
    )
    client_certs = (
        "  sudo install -m 0644 gateway.crt /etc/atelier/gateway.crt\n"
        "  sudo install -o atelier -g atelier -m 0600 gateway.key /etc/atelier/gateway.key\n"
        if request.client_certs
        else ""
    )
    return f"""\
Broker configuration for site {request.site}, made by `atelier broker-config`.
The broker's certificate names: {", ".join(request.hostnames)}.
The CA and every certificate expire on {ca.certificate.not_valid_after_utc:%Y-%m-%d}.

  mosquitto/        -> /etc/mosquitto/ on the broker's host
  server/server.env -> its ATELIER_MQTT_URL line into /etc/atelier/server.env on the server's host
{gateways}
  ca/               -> nowhere online: keep it on an offline medium (it signs certificates)

Mosquitto reads every file below after dropping to its own user: the secrets are its own.
On the broker's host (Debian's mosquitto package), from this directory:

  sudo install -m 0644 mosquitto/mosquitto.conf /etc/mosquitto/mosquitto.conf
  sudo install -d -m 0755 /etc/mosquitto/certs
  sudo install -m 0644 mosquitto/certs/{CA_CERT_NAME} mosquitto/certs/atelier.crt /etc/mosquitto/certs/
  sudo install -o mosquitto -g mosquitto -m 0600 mosquitto/certs/atelier.key /etc/mosquitto/certs/
  sudo install -o mosquitto -g mosquitto -m 0600 mosquitto/atelier.passwd mosquitto/atelier.acl /etc/mosquitto/
  sudo systemctl restart mosquitto

On each gateway, from its directory (systemd reads gateway.env as root):

  sudo install -m 0600 gateway.env /etc/atelier/gateway.env
  sudo install -m 0644 {CA_CERT_NAME} /etc/atelier/{CA_CERT_NAME}
{client_certs}  sudo systemctl restart atelier-gateway

Open port {MQTTS_PORT} to the workshop network only; port {MQTT_PORT} listens on loopback.
See docs/security.md and hardware/mosquitto/README.md.
"""


def generate(request: Request, now: datetime) -> dict[PurePosixPath, GeneratedFile]:
    """Every file of the set, by its path relative to the output directory."""
    passwords = {SERVER_USER: new_password(), **{gateway: new_password() for gateway in request.gateways}}
    ca = make_ca(request.site, now)
    broker = make_broker_certificate(ca, request.site, request.hostnames, now)
    mosquitto = PurePosixPath("mosquitto")
    files = {
        mosquitto / "mosquitto.conf": GeneratedFile(mosquitto_conf(request, now).encode(), PUBLIC),
        mosquitto / "atelier.acl": GeneratedFile(acl(request.site).encode(), PUBLIC),
        mosquitto / "atelier.passwd": GeneratedFile(password_file(passwords).encode(), SECRET),
        mosquitto / "certs" / CA_CERT_NAME: GeneratedFile(ca.certificate_pem, PUBLIC),
        mosquitto / "certs" / "atelier.crt": GeneratedFile(broker.certificate_pem, PUBLIC),
        mosquitto / "certs" / "atelier.key": GeneratedFile(broker.key_pem, SECRET),
        PurePosixPath("ca") / CA_CERT_NAME: GeneratedFile(ca.certificate_pem, PUBLIC),
        PurePosixPath("ca") / "atelier-ca.key": GeneratedFile(ca.key_pem, SECRET),
        PurePosixPath("server") / "server.env": GeneratedFile(
            server_env(request, passwords[SERVER_USER]).encode(), SECRET
        ),
        PurePosixPath("INSTALL.txt"): GeneratedFile(install_text(request, ca).encode(), PUBLIC),
    }
    for gateway in request.gateways:
        directory = PurePosixPath("gateways") / gateway
        files[directory / "gateway.env"] = GeneratedFile(
            gateway_env(request, gateway, passwords[gateway]).encode(), SECRET
        )
        files[directory / CA_CERT_NAME] = GeneratedFile(ca.certificate_pem, PUBLIC)
        if request.client_certs:
            client = make_client_certificate(ca, request.site, gateway, now)
            files[directory / "gateway.crt"] = GeneratedFile(client.certificate_pem, PUBLIC)
            files[directory / "gateway.key"] = GeneratedFile(client.key_pem, SECRET)
    return files


def check_output(out: Path, *, force: bool) -> None:
    """Refuse a file in the way, or a directory with something in it unless ``force``."""
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise BrokerConfigError(f"{out} exists and is not a directory")
        if not force and any(out.iterdir()):
            raise BrokerConfigError(f"{out} is not empty: choose a new directory, or --force to overwrite")


def _write(path: Path, file: GeneratedFile) -> None:
    # A fresh file beside the target (O_EXCL, O_NOFOLLOW: nothing planted there is followed),
    # with its mode from the start, then renamed over the target: a secret is never readable
    # by others, not even briefly, and the target is never half-written.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, file.mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), file.mode)  # whatever the umask
            stream.write(file.content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_files(out: Path, files: Mapping[PurePosixPath, GeneratedFile], *, force: bool) -> None:
    check_output(out, force=force)
    for relative, file in sorted(files.items()):
        for depth in range(len(relative.parts)):
            directory = out.joinpath(*relative.parts[:depth])
            if not directory.is_dir():
                directory.mkdir(mode=0o700, parents=depth == 0)
                directory.chmod(0o700)  # whatever the umask
        _write(out.joinpath(*relative.parts), file)


# --- the command ----------------------------------------------------------------------------------


def _broker_config(args: argparse.Namespace) -> int:
    out: Path = args.out
    try:
        request = check_request(
            args.site, args.gateway, args.hostname or [socket.getfqdn()], client_certs=args.client_certs
        )
        check_output(out, force=args.force)
    except BrokerConfigError as error:
        print(f"atelier broker-config: {error}", file=sys.stderr)
        return 2
    files = generate(request, datetime.now(UTC))
    try:
        write_files(out, files, force=args.force)
    except (OSError, BrokerConfigError) as error:
        print(f"atelier broker-config: cannot write {out}: {error}", file=sys.stderr)
        return 1
    print(
        f"broker configuration for site {request.site} ({len(request.gateways)} gateway(s), "
        f"certificate for {', '.join(request.hostnames)}) written to {out}: see {out / 'INSTALL.txt'}",
        file=sys.stderr,
    )
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``broker-config`` on the ``atelier`` command line."""
    command = subparsers.add_parser(
        "broker-config",
        help="write a site's Mosquitto configuration: passwords, ACL, TLS certificates",
        description="Write the Mosquitto configuration of a site into a new directory: one random "
        "password per gateway and for the server, an ACL confining each gateway to its own topics, "
        "a TLS listener with a CA of the site's own and the broker's certificate, anonymous access "
        "off; and the ATELIER_MQTT_URL of the server and of each gateway. Nothing secret is printed: "
        "the directory's INSTALL.txt says where each file goes. See docs/security.md.",
    )
    command.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new (or empty) directory")
    command.add_argument("--site", required=True, help="the site id, as in ATELIER_SITE")
    command.add_argument(
        "--gateway",
        action="append",
        required=True,
        metavar="ID",
        help="a gateway id, its user name on the broker; repeat for each gateway",
    )
    command.add_argument(
        "--hostname",
        action="append",
        metavar="NAME",
        help="a name (or IP address) gateways reach the broker by; repeat for several, the first "
        "goes into the gateways' URL (default: this host's fully qualified name)",
    )
    command.add_argument(
        "--client-certs",
        action="store_true",
        help="also require a client certificate (made here, one per gateway) on the TLS listener; "
        "the reference gateway cannot present one yet: see docs/security.md",
    )
    command.add_argument(
        "--force", action="store_true", help="write into a non-empty DIR, replacing the files it writes"
    )
    command.set_defaults(func=_broker_config)

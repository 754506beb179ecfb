"""A site's broker as ``atelier broker-config`` makes it, started for real in a temporary place.

The command writes its set into a temporary directory; the generated ``mosquitto.conf`` is used
line for line, except what an installation would have elsewhere: the two listeners' ports
(the TLS one on loopback), the persistence directory, and the ``/etc/mosquitto/`` of the files
it names, which become the generated directory's ``mosquitto/``. Each rewritten line must be
found as many times as expected (the password and ACL files once per listener), as in
tests/protocol/shipped_broker.py.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cli.main import main
from protocol.mqtt import BrokerURL
from tests.protocol.shipped_broker import ShippedBroker
from tests.services import free_port

SITE = "lyon"
HOSTNAME = "localhost"
"""The name in the broker's certificate; ``127.0.0.1`` is then a wrong host name for it."""


def make_set(out: Path, *gateways: str, client_certs: bool = False, site: str = SITE) -> None:
    """Run ``atelier broker-config`` into ``out``, as an operator would."""
    argv = ["broker-config", "--out", str(out), "--site", site, "--hostname", HOSTNAME]
    for gateway in gateways:
        argv += ["--gateway", gateway]
    if client_certs:
        argv.append("--client-certs")
    assert main(argv) == 0


def read_env(path: Path) -> dict[str, str]:
    """The variables of an env file, as systemd's EnvironmentFile reads this simple form."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name] = value
    return found


def _replace(text: str, pattern: str, replacement: str, expected: int = 1) -> str:
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != expected:
        raise AssertionError(
            f"expected {expected} line(s) matching {pattern!r} in the generated file, found {count}"
        )
    return result


def adapt(text: str, out: Path, port: int, tls_port: int) -> str:
    """The generated configuration with its ports and paths moved into ``out``."""
    text = _replace(text, r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1")
    text = _replace(text, r"^listener 8883$", f"listener {tls_port} 127.0.0.1")
    text = _replace(text, r"^persistence_location .*$", f"persistence_location {out}/run/")
    for directive in ("password_file", "acl_file"):  # one for each listener
        text = _replace(text, rf"^{directive} /etc/mosquitto/", f"{directive} {out}/mosquitto/", 2)
    for directive in ("certfile", "keyfile"):
        text = _replace(text, rf"^{directive} /etc/mosquitto/", f"{directive} {out}/mosquitto/")
    if "require_certificate true" in text:
        text = _replace(text, r"^cafile /etc/mosquitto/", f"cafile {out}/mosquitto/")
    return text


@dataclass
class GeneratedSite:
    """The command's output directory, and the broker running its configuration."""

    out: Path
    broker: ShippedBroker

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def tls_port(self) -> int:
        assert self.broker.tls_port is not None
        return self.broker.tls_port

    @property
    def ca_file(self) -> str:
        return str(self.out / "gateways" / self.gateways[0] / "atelier-ca.crt")

    @property
    def gateways(self) -> list[str]:
        return sorted(path.name for path in (self.out / "gateways").iterdir())

    def env(self, who: str) -> dict[str, str]:
        """The env file the command wrote for ``who``: a gateway id, or ``server``."""
        if who == "server":
            return read_env(self.out / "server" / "server.env")
        return read_env(self.out / "gateways" / who / "gateway.env")

    def url(self, who: str) -> BrokerURL:
        """``who``'s generated ATELIER_MQTT_URL, with only the port moved to this broker's."""
        url = BrokerURL.parse(self.env(who)["ATELIER_MQTT_URL"])
        port = self.tls_port if url.tls else self.port
        return BrokerURL(url.host, port, url.tls, url.username, url.password)

    def password(self, who: str) -> str:
        password = self.url(who).password
        assert password is not None
        return password

    def client_cert(self, gateway: str) -> tuple[str, str]:
        directory = self.out / "gateways" / gateway
        return str(directory / "gateway.crt"), str(directory / "gateway.key")


@contextlib.contextmanager
def generated_site(*gateways: str, client_certs: bool = False) -> Iterator[GeneratedSite]:
    # Not pytest's tmp_path: when run as root, mosquitto drops to its own user, which must
    # then read the generated files (it reads them after dropping its privileges).
    parent = Path(tempfile.mkdtemp(prefix="atelier-generated-mosquitto-"))
    out = parent / "broker"
    try:
        make_set(out, *gateways, client_certs=client_certs)
        port, tls_port = free_port(), free_port()
        (out / "run").mkdir()
        conf = adapt((out / "mosquitto" / "mosquitto.conf").read_text(), out, port, tls_port)
        (out / "run" / "mosquitto.conf").write_text(conf)
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError):
                user = pwd.getpwnam("mosquitto")
                for path in [parent, out, *out.rglob("*")]:
                    os.chown(path, user.pw_uid, user.pw_gid)
        broker = ShippedBroker(out / "run", port, tls_port)
        broker.start()
        try:
            yield GeneratedSite(out, broker)
        finally:
            broker.stop()
    finally:
        shutil.rmtree(parent, ignore_errors=True)

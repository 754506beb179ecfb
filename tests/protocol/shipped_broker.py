"""The Mosquitto configuration the project ships, started for real in a temporary place.

``hardware/mosquitto/atelier.conf`` is used line for line, except the lines an
installation would have elsewhere: the listener port, the persistence
directory, the password and ACL files (and, when asked, the TLS block, which
is uncommented and pointed at a throw-away certificate authority). Each of
those lines must be found exactly once, so that a change of the shipped file
that this adaptation would silently miss fails here instead.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.services import ServiceUnavailable, free_port, wait_for_port

HARDWARE = Path(__file__).resolve().parents[2] / "hardware"
CONFIG = HARDWARE / "mosquitto" / "atelier.conf"
ACL = HARDWARE / "mosquitto" / "atelier.acl"

SERVER_USER = "atelier-server"
PASSWORDS = {SERVER_USER: "server-secret", "gw-1": "gw-1-secret", "gw-2": "gw-2-secret"}


def find_program(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if found is None:
        raise ServiceUnavailable(f"{name} is not installed: install the Debian package {package}")
    return found


def directives(text: str) -> dict[str, list[str]]:
    """The active (uncommented) directives of a Mosquitto configuration, by name."""
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            found.setdefault(name, []).append(value.strip())
    return found


def _replace_once(text: str, pattern: str, replacement: str) -> str:
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise AssertionError(f"expected exactly one line matching {pattern!r} in {CONFIG}, found {count}")
    return result


@dataclass
class ShippedBroker:
    directory: Path
    port: int
    tls_port: int | None
    process: subprocess.Popen[bytes] | None = None

    def url(self, user: str, *, tls: bool = False) -> str:
        port = self.tls_port if tls else self.port
        return f"{'mqtts' if tls else 'mqtt'}://{user}:{PASSWORDS[user]}@{'localhost' if tls else '127.0.0.1'}:{port}"

    @property
    def ca_file(self) -> str:
        return str(self.directory / "ca.crt")

    @property
    def log(self) -> str:
        return (self.directory / "mosquitto.log").read_text(errors="replace")

    def start(self) -> None:
        with open(self.directory / "mosquitto.log", "ab") as log:
            self.process = subprocess.Popen(
                [find_program("mosquitto", "mosquitto"), "-c", str(self.directory / "mosquitto.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            for port in (self.port, self.tls_port):
                if port is not None:
                    wait_for_port(port, proc=self.process)
        except ServiceUnavailable as error:
            raise ServiceUnavailable(
                f"mosquitto refused the shipped configuration: {error}\n{self.log}"
            ) from None

    def stop(self) -> None:
        """A clean stop (SIGTERM): Mosquitto writes its persistence file."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _make_certificates(directory: Path) -> None:
    """A throw-away CA and a broker certificate for localhost, signed by it."""
    openssl = find_program("openssl", "openssl")

    def run(*argv: str) -> None:
        subprocess.run([openssl, *argv], check=True, capture_output=True, cwd=directory)

    key = ("-newkey", "rsa:2048", "-nodes")
    run(
        "req",
        "-x509",
        *key,
        "-days",
        "2",
        "-subj",
        "/CN=Atelier test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run("req", *key, "-subj", "/CN=localhost", "-keyout", "broker.key", "-out", "broker.csr")
    (directory / "broker.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    signed_by_ca = ("-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "broker.ext")
    run("x509", "-req", "-in", "broker.csr", *signed_by_ca, "-days", "2", "-out", "broker.crt")


def adapt(text: str, directory: Path, port: int, tls_port: int | None) -> str:
    """The shipped configuration with its ports and paths moved into ``directory``."""
    text = _replace_once(text, r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1")
    text = _replace_once(text, r"^persistence_location .*$", f"persistence_location {directory}/")
    text = _replace_once(text, r"^password_file .*$", f"password_file {directory}/atelier.passwd")
    text = _replace_once(text, r"^acl_file .*$", f"acl_file {directory}/atelier.acl")
    if tls_port is not None:
        text = _replace_once(text, r"^#listener 8883$", f"listener {tls_port} 127.0.0.1")
        text = _replace_once(text, r"^#certfile .*$", f"certfile {directory}/broker.crt")
        text = _replace_once(text, r"^#keyfile .*$", f"keyfile {directory}/broker.key")
        text = _replace_once(text, r"^#(tls_version .*)$", r"\1")
    return text


@contextlib.contextmanager
def shipped_broker(*, tls: bool = False) -> Iterator[ShippedBroker]:
    # Not pytest's tmp_path: when run as root, mosquitto drops to its own user,
    # which cannot enter /tmp/pytest-of-root.
    directory = Path(tempfile.mkdtemp(prefix="atelier-shipped-mosquitto-"))
    try:
        port = free_port()
        tls_port = free_port() if tls else None
        if tls:
            _make_certificates(directory)
        (directory / "mosquitto.conf").write_text(adapt(CONFIG.read_text(), directory, port, tls_port))
        shutil.copy(ACL, directory / "atelier.acl")
        passwd = find_program("mosquitto_passwd", "mosquitto")
        for number, (user, password) in enumerate(PASSWORDS.items()):
            create = ["-c"] if number == 0 else []
            argv = [passwd, *create, "-b", str(directory / "atelier.passwd"), user, password]
            subprocess.run(argv, check=True, capture_output=True)
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError):
                user_ = pwd.getpwnam("mosquitto")
                for path in [directory, *directory.iterdir()]:
                    os.chown(path, user_.pw_uid, user_.pw_gid)
        for path in directory.iterdir():
            path.chmod(0o600)
        broker = ShippedBroker(directory, port, tls_port)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)

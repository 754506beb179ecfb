"""The site's signing key: made safely, loaded strictly, and what its signatures prove."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from sqlalchemy.orm import sessionmaker

from protocol.allowlist import Allowlist, BadAllowlist, public_key_from_text, receive, verify
from protocol.messages import encode
from server.mqtt import MqttService
from server.settings import Settings
from server.signing import SigningKey, SigningKeyError, create_key_file, load_private_key, load_signing_key

ALLOWLIST = Allowlist(site="lyon", gateway="gw-1", version=3, issued_at_ms=1, expires_at_ms=2)


def test_a_new_key_is_readable_by_its_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "site.pem"
    key = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS8
    assert load_private_key(path).public_key() == key.public_key()
    before = path.read_bytes()
    with pytest.raises(SigningKeyError, match="already exists: a signing key is never overwritten"):
        create_key_file(path)
    assert path.read_bytes() == before
    with pytest.raises(SigningKeyError, match="cannot create"):
        create_key_file(tmp_path / "no" / "such" / "dir.pem")


def test_a_dangling_link_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.pem"
    (tmp_path / "site.pem").symlink_to(target)
    with pytest.raises(SigningKeyError):
        create_key_file(tmp_path / "site.pem")
    assert not target.exists()


def test_only_an_unencrypted_ed25519_key_is_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(SigningKeyError, match="cannot read the signing key"):
        load_private_key(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(SigningKeyError, match="is not an unencrypted PEM private key"):
        load_private_key(garbage)
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret")
        )
    )
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM private key"):
        load_private_key(ec_key)
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519 private key"):
        load_private_key(ec_key)
    # Readable by others: loaded, with a warning.
    path = tmp_path / "site.pem"
    create_key_file(path)
    path.chmod(0o644)
    caplog.set_level(logging.WARNING)
    load_private_key(path)
    assert "can be read by other users (mode 644): chmod 600 it" in caplog.text


def test_no_path_means_no_key(tmp_path: Path) -> None:
    assert load_signing_key(None) is None
    path = tmp_path / "site.pem"
    create_key_file(path)
    key = load_signing_key(path, "site-2")
    assert key is not None
    assert key.key_id == "site-2"


def test_what_a_signature_proves(tmp_path: Path) -> None:
    path = tmp_path / "site.pem"
    create_key_file(path)
    key = load_signing_key(path, "site-1")
    assert key is not None
    keys = {"site-1": public_key_from_text(key.public_text)}
    signed = key.sign(ALLOWLIST)
    assert verify(signed, keys) == ALLOWLIST
    assert receive(encode(signed), keys) == ALLOWLIST
    other = SigningKey("site-1", load_private_key(create_key_path(tmp_path)))
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(msgspec.structs.replace(other.sign(ALLOWLIST), snapshot=signed.snapshot), keys)
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(signed, {"site-1": other.public})
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(
            msgspec.structs.replace(signed, snapshot=signed.snapshot.replace('"version":3', '"version":4')),
            keys,
        )


def create_key_path(directory: Path) -> Path:
    path = directory / "other.pem"
    create_key_file(path)
    return path


def test_a_configured_key_that_cannot_be_read_stops_the_service_from_starting(tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite://", signing_key_file=tmp_path / "missing.pem")
    with pytest.raises(SigningKeyError, match=r"missing\.pem"):
        MqttService(settings, sessionmaker())

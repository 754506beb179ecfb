"""Ed25519 both ways: the server signs with `cryptography`, the gateway verifies in pure Python.

:class:`protocol.allowlist.VerifyKey` (the ``ecdsa`` package) must accept exactly what
OpenSSL's Ed25519 accepts for the signatures that matter, and read the same key texts.
"""

import base64

import msgspec
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.allowlist import (
    Allowlist,
    AllowlistEntry,
    AllowlistGrant,
    BadAllowlist,
    VerifyKey,
    public_key_from_text,
    public_key_text,
    receive,
    sign,
    verify,
)
from protocol.messages import CertificationLevel, encode
from tests.protocol.samples import EXAMPLE_KEY, EXAMPLE_PUBLIC_KEY, T0

SNAPSHOT = Allowlist(
    site="atelier-lyon",
    gateway="gw-textile-1",
    version=3,
    issued_at_ms=T0,
    expires_at_ms=T0 + 86_400_000,
    entries=[
        AllowlistEntry(
            badge="04a1b2c3",
            member_id=42,
            member_name="Camille",
            grants=[AllowlistGrant(machine="brother-s7200", level=CertificationLevel.AUTONOMOUS)],
        )
    ],
)

L = 2**252 + 27742317777372353535851937790883648493
"""The order of Ed25519's base point: a signature's S must be below it (RFC 8032, 5.1.7)."""


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def _openssl_verifies(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def test_rfc_8032_test_vector_1_verifies() -> None:
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert VerifyKey(public).verifies(signature, b"")
    assert not VerifyKey(public).verifies(signature, b"\x00")


def test_a_snapshot_signed_by_cryptography_verifies_on_the_gateway() -> None:
    key = Ed25519PrivateKey.generate()
    keys = {"site-1": public_key_from_text(public_key_text(key.public_key()))}
    signed = sign(SNAPSHOT, key, "site-1")
    assert verify(signed, keys) == SNAPSHOT
    assert receive(encode(signed), keys) == SNAPSHOT


def test_the_key_text_is_base64url_of_the_32_raw_bytes_both_ways() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw()
    text = public_key_text(key.public_key())
    assert text == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert public_key_from_text(text).public_bytes_raw() == raw
    assert public_key_text(public_key_from_text(text)) == text
    assert public_key_from_text(f"  {text}\n") == VerifyKey(raw)
    assert public_key_text(EXAMPLE_KEY.public_key()) == EXAMPLE_PUBLIC_KEY


@pytest.mark.parametrize("bit", [0, 7, 100, 255, 256, 300, 511])
def test_a_flipped_bit_of_the_signature_is_refused_by_both(bit: int) -> None:
    key = Ed25519PrivateKey.generate()
    data = encode(SNAPSHOT)
    signature = _flip(key.sign(data), bit)
    assert not _openssl_verifies(key.public_key(), signature, data)
    assert not VerifyKey(key.public_key().public_bytes_raw()).verifies(signature, data)


def test_a_flipped_bit_of_the_snapshot_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    keys = {"site-1": VerifyKey(key.public_key().public_bytes_raw())}
    signed = sign(SNAPSHOT, key, "site-1")
    forged = signed.snapshot.replace('"version":3', '"version":2')
    assert forged != signed.snapshot
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(msgspec.structs.replace(signed, snapshot=forged), keys)
    data = signed.snapshot.encode()
    signature = base64.urlsafe_b64decode(signed.signature + "==")
    for bit in (0, 8 * len(data) // 2, 8 * len(data) - 1):
        assert not keys["site-1"].verifies(signature, _flip(data, bit))


def test_a_foreign_key_is_refused() -> None:
    signed = sign(SNAPSHOT, Ed25519PrivateKey.generate(), "site-1")
    stranger = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(signed, {"site-1": VerifyKey(stranger.public_bytes_raw())})
    with pytest.raises(BadAllowlist, match="does not know"):
        verify(signed, {"site-2": VerifyKey(stranger.public_bytes_raw())})


def test_a_malleated_signature_is_refused_by_both() -> None:
    """S + L verifies the same equation; RFC 8032 and OpenSSL refuse it, and so must the gateway."""
    key = Ed25519PrivateKey.generate()
    data = encode(SNAPSHOT)
    signature = key.sign(data)
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + L).to_bytes(32, "little")
    assert not _openssl_verifies(key.public_key(), malleated, data)
    assert not VerifyKey(key.public_key().public_bytes_raw()).verifies(malleated, data)


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 65, b"\xff" * 64])
def test_what_is_no_signature_is_refused_not_raised(signature: bytes) -> None:
    key = VerifyKey(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    assert not key.verifies(signature, b"data")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "32 bytes, not 0"),
        ("AAAA", "32 bytes, not 3"),
        ("not base64!", "public key is not base64"),
        # y = 2 has no x on the curve: 32 bytes, but no public key.
        (base64.urlsafe_b64encode((2).to_bytes(32, "little")).rstrip(b"=").decode(), "no point"),
    ],
)
def test_a_key_text_that_is_no_key_is_refused(text: str, complaint: str) -> None:
    with pytest.raises(BadAllowlist, match=complaint):
        public_key_from_text(text)

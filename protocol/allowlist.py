"""The allowlist: what a gateway may decide alone while the server is out of reach.

The server sends each gateway a snapshot of who may use which of its machines, at
which level and until when, signed with the site's Ed25519 key. The gateway keeps
the newest snapshot whose signature it can verify with the public key in its
configuration, and decides from it when the server does not answer in time.

On the wire (retained, QoS 1, on ``.../<gateway>/allowlist``) the snapshot travels
as a :class:`SignedAllowlist`: the snapshot's JSON as a string, and the signature
of exactly those UTF-8 bytes. Verifying the bytes that were signed, rather than a
re-serialisation of them, keeps the signature independent of any JSON library.

The gateway verifies with :class:`VerifyKey`, in pure Python (the ``ecdsa`` package): it
checks a snapshot now and then, and ``cryptography`` (OpenSSL) would cost it about 8 MiB
of its resident memory (docs/benchmarks.md). The server signs with ``cryptography``
(:mod:`server.signing`); :func:`sign` takes any key with a ``sign(bytes) -> bytes``.
"""

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Protocol

import msgspec
from ecdsa import eddsa

from protocol.errors import ProtocolError
from protocol.ids import Ident, whole_text
from protocol.messages import (
    BadgeUid,
    CertificationLevel,
    Counter,
    MemberId,
    Message,
    Millis,
    decode,
    encode,
    upper_case_badges,
    written,
)

MAX_ALLOWLIST_BYTES = 4 * 1024 * 1024
"""A signed snapshot may be this large: about 20,000 badges with a few machines each."""

KEY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

KeyId = Annotated[str, msgspec.Meta(pattern=whole_text(KEY_ID_PATTERN))]


class BadAllowlist(ProtocolError, ValueError):
    """A snapshot the gateway must not trust: badly signed, for someone else, older, or expired."""


class AllowlistGrant(Message, frozen=True, kw_only=True):
    """One machine a badge may use, at a level, until a time (its certification's expiry)."""

    machine: Ident
    level: CertificationLevel
    until_ms: Millis | None = None
    """When the certification lapses; absent: it does not expire by date."""


class AllowlistEntry(Message, frozen=True, kw_only=True):
    """A badge the gateway may recognise, and what its holder may do."""

    badge: BadgeUid
    member_id: MemberId
    member_name: Annotated[str, msgspec.Meta(max_length=120)] = written("")
    manager: bool = written(False)
    """A manager may use every machine when a machine's offline policy is "managers"."""
    grants: Annotated[list[AllowlistGrant], msgspec.Meta(max_length=64)] = written([])
    max_minutes: Annotated[int, msgspec.Meta(ge=0, le=2**31)] | None = None
    """A prepaid member: the minutes the balance paid for when the snapshot was made;
    0 means refused (below the minimum balance). Absent: no limit."""

    def __post_init__(self) -> None:
        upper_case_badges(self, "badge")


class AllowlistMachine(Message, frozen=True, kw_only=True):
    """A machine of the gateway, and whether a manager has locked it out."""

    machine: Ident
    locked_out: bool = written(False)
    lockout_reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class Allowlist(Message, frozen=True, kw_only=True):
    """One gateway's snapshot. ``version`` only grows; a gateway ignores an older one."""

    site: Ident
    gateway: Ident
    version: Counter
    issued_at_ms: Millis
    expires_at_ms: Millis
    machines: Annotated[list[AllowlistMachine], msgspec.Meta(max_length=32)] = written([])
    entries: Annotated[list[AllowlistEntry], msgspec.Meta(max_length=50_000)] = written([])

    def entry(self, badge: str) -> AllowlistEntry | None:
        """The entry of ``badge`` (any case), if the snapshot has one."""
        wanted = badge.upper()
        for found in self.entries:
            if found.badge == wanted:
                return found
        return None

    def machine(self, machine: str) -> AllowlistMachine | None:
        for found in self.machines:
            if found.machine == machine:
                return found
        return None


class SignedAllowlist(Message, frozen=True, kw_only=True):
    """What flows on the allowlist channel: a snapshot's JSON and its Ed25519 signature."""

    key_id: KeyId
    """Which of the site's keys signed it, so a site can roll its key over."""
    snapshot: Annotated[str, msgspec.Meta(max_length=MAX_ALLOWLIST_BYTES)]
    """The :class:`Allowlist` as JSON text; the signature covers its UTF-8 bytes."""
    signature: Annotated[str, msgspec.Meta(max_length=100)]
    """Base64 (URL-safe, unpadded) of the 64-byte Ed25519 signature."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str, what: str = "signature") -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as error:
        raise BadAllowlist(f"the {what} is not base64: {error}") from None


class Signer(Protocol):
    """A private key that signs: the server's ``Ed25519PrivateKey`` (``cryptography``) is one."""

    def sign(self, data: bytes, /) -> bytes: ...


class RawPublicKey(Protocol):
    """A public key that gives its 32 raw bytes: a :class:`VerifyKey`, or ``cryptography``'s ``Ed25519PublicKey``."""

    def public_bytes_raw(self) -> bytes: ...


class VerifyKey:
    """An Ed25519 public key (RFC 8032) that verifies signatures, from its 32 raw bytes."""

    __slots__ = ("_key", "_raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise BadAllowlist(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
        self._raw = bytes(raw)
        try:
            self._key = eddsa.PublicKey(eddsa.generator_ed25519, self._raw)
        except (ValueError, AssertionError):  # ecdsa's MalformedPointError is an AssertionError
            raise BadAllowlist("not an Ed25519 public key: its bytes are no point of the curve") from None

    def public_bytes_raw(self) -> bytes:
        return self._raw

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``data``."""
        try:
            return bool(self._key.verify(data, signature))
        except (ValueError, AssertionError):  # a bad signature, or bytes that are no signature
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({public_key_text(self)!r})"


def sign(allowlist: Allowlist, key: Signer, key_id: str) -> SignedAllowlist:
    """The snapshot signed with the site's private key."""
    text = encode(allowlist).decode()
    return SignedAllowlist(key_id=key_id, snapshot=text, signature=_b64(key.sign(text.encode())))


def verify(signed: SignedAllowlist, keys: Mapping[str, VerifyKey]) -> Allowlist:
    """The snapshot, if one of ``keys`` signed it; else :class:`BadAllowlist`."""
    key = keys.get(signed.key_id)
    if key is None:
        raise BadAllowlist(f"signed with key {signed.key_id!r}, which this gateway does not know")
    if not key.verifies(_unb64(signed.signature), signed.snapshot.encode()):
        raise BadAllowlist(f"bad signature (key {signed.key_id!r})")
    return decode(Allowlist, signed.snapshot.encode(), limit=MAX_ALLOWLIST_BYTES)


def receive(payload: bytes | bytearray, keys: Mapping[str, VerifyKey]) -> Allowlist:
    """Parse and verify a payload from the allowlist channel."""
    return verify(decode(SignedAllowlist, payload, limit=MAX_ALLOWLIST_BYTES + 1024), keys)


def accept(
    new: Allowlist,
    current: Allowlist | None,
    *,
    site: str,
    gateway: str,
    now_ms: int,
) -> Allowlist:
    """``new`` if the gateway should replace ``current`` with it; else :class:`BadAllowlist`.

    Refused: a snapshot for another site or gateway, one not newer than the one held,
    and one already expired by the gateway's clock.
    """
    if (new.site, new.gateway) != (site, gateway):
        raise BadAllowlist(f"snapshot for {new.site}/{new.gateway}, not for {site}/{gateway}")
    if current is not None and new.version <= current.version:
        raise BadAllowlist(f"snapshot version {new.version} is not newer than {current.version}")
    if new.expires_at_ms <= now_ms:
        raise BadAllowlist(f"snapshot version {new.version} expired at {new.expires_at_ms} (now {now_ms})")
    return new


def public_key_text(key: RawPublicKey) -> str:
    """The public key as base64 (URL-safe, unpadded) of its 32 raw bytes, for a gateway's configuration."""
    return _b64(key.public_bytes_raw())


def public_key_from_text(text: str) -> VerifyKey:
    """The inverse of :func:`public_key_text`; :class:`BadAllowlist` if it is not one."""
    return VerifyKey(_unb64(text.strip(), "public key"))

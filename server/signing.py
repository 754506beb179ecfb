"""The site's signing key: the Ed25519 private key that signs every gateway's allowlist.

One key per site, in a PEM file (PKCS8, unencrypted) that only the server's user may
read, made by ``atelier keys create``. Its public half, printed by ``atelier keys
public``, goes into each gateway's configuration under the key's id
(``ATELIER_SIGNING_KEY_ID``): ``[gateway] allowlist_keys = { "<key id>" = "<public key>" }``.
The id lets a site roll its key over: a gateway may know several keys at once.

Without ``ATELIER_SIGNING_KEY_FILE`` the server publishes no allowlist (and says so once
in its log): a key is never made behind the operator's back, since every gateway would
have to be told about it anyway.
"""

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from protocol.allowlist import Allowlist, SignedAllowlist, VerifyKey, public_key_text, sign

log = logging.getLogger(__name__)

DEFAULT_KEY_ID = "site-1"


class SigningKeyError(Exception):
    """The key file is missing, unreadable, not an Ed25519 key, or already there when making one."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The site's private key and the id gateways know its public half by."""

    key_id: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> VerifyKey:
        """The public half, as a gateway holds it to verify (protocol.allowlist, without ``cryptography``)."""
        return VerifyKey(self.private.public_key().public_bytes_raw())

    @property
    def public_text(self) -> str:
        """What goes into a gateway's ``allowlist_keys`` for :attr:`key_id`."""
        return public_key_text(self.public)

    def sign(self, allowlist: Allowlist) -> SignedAllowlist:
        return sign(allowlist, self.private, self.key_id)


def create_key_file(path: Path) -> Ed25519PrivateKey:
    """Make a new key and write it to ``path`` (mode 0600); never overwrites a file."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # O_EXCL: an existing file (or a dangling link planted there) is refused, not replaced;
    # the mode is set at creation, so the key is never readable by others, not even briefly.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path} already exists: a signing key is never overwritten") from None
    except OSError as error:
        raise SigningKeyError(f"cannot create {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file at ``path``, or :class:`SigningKeyError` saying why not."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as error:
        raise SigningKeyError(f"cannot read the signing key {path}: {error.strerror or error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "the signing key %s can be read by other users (mode %o): chmod 600 it", path, mode & 0o777
        )
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        # TypeError: the key is encrypted. The server starts unattended: no passphrase.
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_signing_key(path: Path | None, key_id: str = DEFAULT_KEY_ID) -> SigningKey | None:
    """The site's key from ``path``; None when no path is configured (allowlists are then not published)."""
    if path is None:
        return None
    return SigningKey(key_id, load_private_key(path))

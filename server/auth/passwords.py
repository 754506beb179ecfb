"""Members' passwords, hashed with argon2id.

The parameters are argon2-cffi's defaults, RFC 9106's "low memory" choice: 64 MiB of
memory, 3 passes, 4 lanes, a 16-byte random salt and a 32-byte hash (about 0.15 s on a
2-core server). They are stored in each hash, so changing them later needs no migration:
a member's hash is redone with the new ones at their next sign-in.
"""

from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from server import workshop
from server.audit import audit
from server.models import Member

MIN_LENGTH = 10
MAX_LENGTH = 256
"""Long passphrases are welcome; the bound keeps one request from hashing megabytes."""

_hasher = PasswordHasher()

# Verified against when the account does not exist, so that a wrong e-mail takes as long
# to refuse as a wrong password and does not tell which members exist.
_DECOY = _hasher.hash("no account has this password, it only takes time to check")


class WeakPassword(workshop.InvalidValue):
    """Too short, too long, or blank."""


def check_strength(password: str) -> str:
    """``password`` if acceptable: 10 to 256 characters, not only spaces; no other rule
    (length is what makes a password strong, and composition rules make them worse)."""
    if not password.strip():
        raise WeakPassword("a password cannot be blank")
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_strength(password))


def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches the ``stored`` hash; always as slow, even without a hash."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _DECOY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def set_password(db: Session, member_id: int, password: str, *, now: datetime, by: int | None) -> Member:
    """Give a member a new password (flushed, not committed), in the audit trail.

    The caller revokes the member's sessions (:func:`server.auth.sessions.revoke_sessions`).
    """
    member = workshop.get_member(db, member_id)
    workshop.check_not_erased(member)
    member.password_hash = hash_password(password)
    member.password_changed_at = now
    db.flush()
    audit(db, "member.password", "member", member.id, actor_id=by, at=now, details={"self": by == member.id})
    return member

"""API tokens: random, shown once, stored only as their SHA-256; scoped, expiring, revocable.

A token is 32 random bytes from :func:`secrets.token_urlsafe`, prefixed ``atl_`` so
that one pasted by mistake in a chat or a commit is recognisable. The database holds
its SHA-256 only: a stolen copy of the database gives nobody the tokens. A random
token of this length needs no slow hash, and the lookup is a plain indexed equality.

A token does what both its scopes (:mod:`server.auth.scopes`) and its member's roles
allow, until it expires (if it was given an expiry) or is revoked.
"""

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server import workshop
from server.audit import audit
from server.auth.scopes import Scope, effective, format_scopes
from server.models import ApiToken, Member

PREFIX = "atl_"
LABEL_MAX = 120


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``token`` is shown to its owner once and never stored."""

    id: int
    member_id: int
    label: str
    scopes: frozenset[Scope]
    expires_at: datetime | None
    token: str


def create_token(
    db: Session,
    member_id: int,
    *,
    scopes: Iterable[Scope],
    now: datetime,
    label: str = "",
    expires_at: datetime | None = None,
    by: int | None = None,
) -> IssuedToken:
    """A new token acting as ``member_id`` with ``scopes`` and ``read``, which each includes
    (flushed, not committed), in the audit trail."""
    member = workshop.get_member(db, member_id)
    workshop.check_not_erased(member)
    label = label.strip()
    if len(label) > LABEL_MAX:
        raise workshop.InvalidValue(f"a token's label is at most {LABEL_MAX} characters")
    held = effective(scopes)
    if not held:
        raise workshop.InvalidValue("a token needs at least one scope")
    if expires_at is not None and expires_at <= now:
        raise workshop.InvalidValue("a token's expiry must be in the future")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=token_hash(token),
        member_id=member.id,
        label=label,
        scopes=format_scopes(held),
        created_at=now,
        expires_at=expires_at,
    )
    db.add(row)
    db.flush()
    audit(
        db,
        "token.create",
        "api_token",
        row.id,
        actor_id=by,
        at=now,
        details={"member_id": member.id, "label": label, "scopes": row.scopes, "expires_at": expires_at},
    )
    return IssuedToken(row.id, member.id, label, held, expires_at, token)


def revoke_token(db: Session, token_id: int, *, now: datetime, by: int | None = None) -> ApiToken:
    """Stop a token from working (flushed, not committed); the row stays, with when."""
    row = db.get(ApiToken, token_id)
    if row is None:
        raise workshop.NotFound(f"no API token {token_id}")
    if row.revoked_at is not None:
        raise workshop.Conflict(f"API token {token_id} was already revoked")
    row.revoked_at = now
    db.flush()
    audit(db, "token.revoke", "api_token", row.id, actor_id=by, at=now, details={"member_id": row.member_id})
    return row


def revoke_member_tokens(db: Session, member_id: int, *, now: datetime) -> int:
    """Revoke every live token of a member (on erasure); how many there were."""
    rows = list(
        db.scalars(sa.select(ApiToken).where(ApiToken.member_id == member_id, ApiToken.revoked_at.is_(None)))
    )
    for row in rows:
        row.revoked_at = now
    db.flush()
    return len(rows)


def find_token(db: Session, token: str, now: datetime) -> tuple[ApiToken, Member] | None:
    """The live token and its member, or None if it is unknown, revoked, expired or its member erased."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    found = db.execute(
        sa.select(ApiToken, Member)
        .join(Member, ApiToken.member_id == Member.id)
        .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
    ).first()
    if found is None:
        return None
    row, member = found
    if (row.expires_at is not None and row.expires_at <= now) or member.erased_at is not None:
        return None
    return row, member


def member_for_token(db: Session, token: str, now: datetime) -> Member | None:
    """The member a live token acts as, or None."""
    found = find_token(db, token, now)
    return found[1] if found else None


def list_tokens(db: Session, member_id: int | None = None) -> list[ApiToken]:
    query = sa.select(ApiToken).order_by(ApiToken.id)
    if member_id is not None:
        query = query.where(ApiToken.member_id == member_id)
    return list(db.scalars(query))

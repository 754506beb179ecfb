"""API tokens: random, shown once, stored only as their SHA-256.

A token is 32 random bytes from :func:`secrets.token_urlsafe`, prefixed ``atl_`` so
that one pasted by mistake in a chat or a commit is recognisable. The database holds
its SHA-256 only: a stolen copy of the database gives nobody the tokens. A random
token of this length needs no slow hash, and the lookup is a plain indexed equality.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server import workshop
from server.audit import audit
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
    token: str


def create_token(
    db: Session, member_id: int, *, now: datetime, label: str = "", by: int | None = None
) -> IssuedToken:
    """A new token acting as ``member_id`` (flushed, not committed), in the audit trail."""
    member = workshop.get_member(db, member_id)
    label = label.strip()
    if len(label) > LABEL_MAX:
        raise workshop.InvalidValue(f"a token's label is at most {LABEL_MAX} characters")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_hash=token_hash(token), member_id=member.id, label=label, created_at=now)
    db.add(row)
    db.flush()
    audit(
        db,
        "token.create",
        "api_token",
        row.id,
        actor_id=by,
        at=now,
        details={"member_id": member.id, "label": label},
    )
    return IssuedToken(row.id, member.id, label, token)


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


def member_for_token(db: Session, token: str) -> Member | None:
    """The member a token acts as, or None if it is unknown or revoked."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    return db.scalar(
        sa.select(Member)
        .join(ApiToken, ApiToken.member_id == Member.id)
        .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
    )


def list_tokens(db: Session, member_id: int | None = None) -> list[ApiToken]:
    query = sa.select(ApiToken).order_by(ApiToken.id)
    if member_id is not None:
        query = query.where(ApiToken.member_id == member_id)
    return list(db.scalars(query))

"""Browser sessions: what a sign-in gives, kept on the server.

The cookie carries a random token (32 bytes); the ``web_sessions`` row holds its SHA-256,
the member, the CSRF token and three moments. A session ends at the first of: its
absolute expiry (``Settings.session_lifetime_s`` after sign-in), ``session_idle_timeout_s``
without a request, sign-out, a change of password, or the member's erasure. Ending is
setting ``revoked_at``: the row stays, so a stolen cookie replayed later finds a dead session.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.auth.tokens import token_hash
from server.models import Member, WebSession

TOUCH_EVERY = timedelta(seconds=60)
"""``last_seen_at`` moves at most this often: a write per request would be a write too many."""

TOKEN_MAX = 200


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """A new session: ``token`` goes into the cookie and is never stored."""

    row: WebSession
    token: str


def open_session(db: Session, member: Member, *, now: datetime, lifetime: timedelta) -> OpenedSession:
    """A new session for ``member`` (flushed, not committed)."""
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=token_hash(token),
        member_id=member.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
    )
    db.add(row)
    db.flush()
    return OpenedSession(row, token)


def find_session(
    db: Session, token: str, *, now: datetime, idle_timeout: timedelta
) -> tuple[WebSession, Member] | None:
    """The live session of a cookie token and its member, or None; a live one is touched."""
    if not token or len(token) > TOKEN_MAX:
        return None
    found = db.execute(
        sa.select(WebSession, Member)
        .join(Member, WebSession.member_id == Member.id)
        .where(WebSession.token_hash == token_hash(token), WebSession.revoked_at.is_(None))
    ).first()
    if found is None:
        return None
    row, member = found
    if row.expires_at <= now or row.last_seen_at + idle_timeout <= now or member.erased_at is not None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        db.flush()
    return row, member


def revoke_session(db: Session, session_id: int, *, now: datetime) -> None:
    row = db.get(WebSession, session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
        db.flush()


def revoke_sessions(db: Session, member_id: int, *, now: datetime, keep: int | None = None) -> int:
    """End every live session of a member but ``keep`` (the one changing its password); how many."""
    query = sa.select(WebSession).where(WebSession.member_id == member_id, WebSession.revoked_at.is_(None))
    if keep is not None:
        query = query.where(WebSession.id != keep)
    rows = list(db.scalars(query))
    for row in rows:
        row.revoked_at = now
    db.flush()
    return len(rows)

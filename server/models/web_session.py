"""Signed-in browser sessions: the server side of the session cookie."""

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class WebSession(Base):
    """One sign-in (``POST /api/v1/auth/login``) until it expires, idles out or is revoked.

    The cookie holds a random token; only its SHA-256 is kept here, as for API tokens.
    ``csrf_token`` is the synchronizer token every unsafe request of the session must send
    back (:mod:`server.auth.csrf`): worthless without the cookie, so it is kept as is.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    """Moved on at most once a minute: the idle timeout counts from it."""
    expires_at: Mapped[datetime]
    """The absolute end, however active the session is."""
    revoked_at: Mapped[datetime | None]
    """Signed out, password changed, or member erased."""

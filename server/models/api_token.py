"""API tokens: a member's key to the REST API, stored only as a hash."""

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base
from server.models.member import Member


class ApiToken(Base):
    """``Authorization: Bearer <token>`` acts as ``member``.

    Only the SHA-256 of the token is kept: a copy of the database does not give
    anyone the tokens. Revoking sets ``revoked_at``; the row stays for the record.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Lower-case hex SHA-256 of the token."""
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    scopes: Mapped[str] = mapped_column(String(64))
    """What it may do, space-separated (``read training``): :class:`server.auth.scopes.Scope`.
    A request needs both the scope and the member's role."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    """After this it no longer works; None: until revoked."""
    revoked_at: Mapped[datetime | None]

    member: Mapped[Member] = relationship()

"""The audit trail: who did what to which record, when, and why. Append-only."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, BigPK, append_only


@append_only
class AuditEntry(Base):
    """One row per change made by a person or by the server on their behalf.

    ``action`` is ``<subject>.<verb>`` (``certification.grant``, ``member.roles``,
    ``token.create``); ``subject_type`` and ``subject_id`` name the record (the id as
    text, so that a badge UID or a machine slug fits); ``details`` holds what changed.
    Rows are only ever added: the ORM refuses to update or delete one.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_subject_type_subject_id", "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    """The member who acted; None for the server itself or a command-line tool."""
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

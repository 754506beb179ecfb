"""The audit trail: one call records who did what to which record, and why.

Every change a person makes through the server (a certification granted or
revoked, a role given, a token issued) adds an :class:`~server.models.AuditEntry`
in the same transaction as the change itself, so the trail cannot miss a change
that was committed, nor record one that was not.
"""

from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from server.models import AuditEntry


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: moments as ISO 8601, enums as their value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return value


def audit(
    db: Session,
    action: str,
    subject_type: str,
    subject_id: int | str | None,
    *,
    actor_id: int | None,
    at: datetime,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry to the trail (flushed, not committed: it belongs to the caller's transaction).

    ``action`` is ``<subject>.<verb>``, e.g. ``certification.grant``; ``actor_id`` is
    the member who acted, None for the server itself or a command-line tool.
    """
    entry = AuditEntry(
        at=at,
        actor_id=actor_id,
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        details=_plain(dict(details or {})),
    )
    db.add(entry)
    db.flush()
    return entry

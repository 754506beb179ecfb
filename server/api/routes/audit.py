"""The audit trail, newest first: who did what to which record, and when (managers)."""

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from server.api.deps import PageDep, SessionDep
from server.auth.policy import ManagerRead
from server.models import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: int | None
    """The member who acted; null for the server itself or a command-line tool."""
    action: str
    """``<entity>.<verb>``: ``member.create``, ``badge.disable``, ``certification.grant``,
    ``price_version.add``, ``invoice.credit_note``, ``payment.record``, ``machine.lockout``..."""
    subject_type: str
    subject_id: str | None
    details: dict[str, Any]


@router.get("")
def list_audit_entries(
    *,
    caller: ManagerRead,
    db: SessionDep,
    page: PageDep,
    entity: Annotated[str | None, Query(max_length=32, description="e.g. member, badge, invoice")] = None,
    entity_id: Annotated[str | None, Query(max_length=64, description="with entity: one record")] = None,
    actor: Annotated[int | None, Query(description="the member who acted")] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. member.erase")] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> list[AuditEntryOut]:
    """Entries newest first, filtered by the record they are about, who acted, what they did
    and when (``since`` included, ``until`` excluded); ``limit`` and ``offset`` page through."""
    query = sa.select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if entity is not None:
        query = query.where(AuditEntry.subject_type == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.subject_id == entity_id)
    if actor is not None:
        query = query.where(AuditEntry.actor_id == actor)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    rows = db.scalars(query.limit(page.limit).offset(page.offset))
    return [AuditEntryOut.model_validate(row) for row in rows]

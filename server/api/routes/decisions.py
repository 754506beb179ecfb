"""The access decision log, newest first: who tapped where, and why they were let in or not (managers;
a member sees their own at ``/me/decisions``)."""

from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict

from protocol.messages import Reason
from server.api.deps import PageDep, SessionDep
from server.auth.policy import ManagerRead
from server.ids import Ident
from server.models import AccessDecision

router = APIRouter(prefix="/decisions", tags=["access"])


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    request_id: str
    gateway_slug: str
    machine_slug: str
    badge_uid: str
    member_id: int | None
    granted: bool
    reason: Reason
    message: str


@router.get("")
def list_decisions(
    *,
    caller: ManagerRead,
    db: SessionDep,
    page: PageDep,
    member: int | None = None,
    machine: Ident | None = None,
    granted: bool | None = None,
    since: AwareDatetime | None = None,
) -> list[DecisionOut]:
    query = sa.select(AccessDecision).order_by(AccessDecision.at.desc(), AccessDecision.id.desc())
    if member is not None:
        query = query.where(AccessDecision.member_id == member)
    if machine is not None:
        query = query.where(AccessDecision.machine_slug == machine)
    if granted is not None:
        query = query.where(AccessDecision.granted == granted)
    if since is not None:
        query = query.where(AccessDecision.at >= since)
    rows = db.scalars(query.limit(page.limit).offset(page.offset))
    return [DecisionOut.model_validate(decision) for decision in rows]

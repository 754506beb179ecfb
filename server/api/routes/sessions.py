"""Usage sessions, newest first: what was used, by whom, for how long (managers and treasurers;
a member sees their own at ``/me/sessions``)."""

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, status
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.orm import Session

from server.api.deps import Page, PageDep, SessionDep
from server.auth.policy import BillingRead
from server.ids import Ident
from server.models import Gateway, Machine, UsageSession

router = APIRouter(prefix="/sessions", tags=["usage"])


class UsageSessionOut(BaseModel):
    session_id: str
    gateway: str
    machine: str
    member_id: int | None
    supervisor_id: int | None
    """The trainer who supervised the session, for a member certified at the supervised level."""
    badge_uid: str | None
    decided_by: str | None
    started_at: datetime
    ended_at: datetime | None
    unlocked_ms: int
    running_ms: int
    idle_ms: int
    energy_wh: float | None
    end_reason: str | None
    clock_suspect: bool
    """The gateway's clock was off while the session was recorded (beyond ATELIER_CLOCK_TOLERANCE_S),
    or jumped during it: its moments may be wrong; its durations, which billing uses, are not."""
    clock_offset_ms: int | None
    """The gateway's clock minus the server's when the session was ingested, in ms (None: not measured)."""


def find_sessions(db: Session, criteria: list[sa.ColumnElement[bool]], page: Page) -> list[UsageSessionOut]:
    query = (
        sa.select(UsageSession, Gateway.slug, Machine.slug)
        .join(Gateway, Gateway.id == UsageSession.gateway_id)
        .join(Machine, Machine.id == UsageSession.machine_id)
        .where(*criteria)
        .order_by(UsageSession.started_at.desc(), UsageSession.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    )
    return [_out(session, gateway, machine) for session, gateway, machine in db.execute(query)]


def _out(session: UsageSession, gateway: str, machine: str) -> UsageSessionOut:
    return UsageSessionOut(
        session_id=session.session_id,
        gateway=gateway,
        machine=machine,
        member_id=session.member_id,
        supervisor_id=session.supervisor_id,
        badge_uid=session.badge_uid,
        decided_by=session.decided_by,
        started_at=session.started_at,
        ended_at=session.ended_at,
        unlocked_ms=session.unlocked_ms,
        running_ms=session.running_ms,
        idle_ms=session.idle_ms,
        energy_wh=session.energy_wh,
        end_reason=session.end_reason,
        clock_suspect=session.clock_suspect,
        clock_offset_ms=session.clock_offset_ms,
    )


@router.get("")
def list_sessions(
    *,
    caller: BillingRead,
    db: SessionDep,
    page: PageDep,
    machine: Ident | None = None,
    member: int | None = None,
    since: AwareDatetime | None = None,
    open_only: bool = False,
    clock_suspect: bool | None = None,
) -> list[UsageSessionOut]:
    """Sessions newest first; ``since`` keeps those started at or after it; ``clock_suspect=true``
    those recorded while their gateway's clock was off."""
    criteria: list[sa.ColumnElement[bool]] = []
    if machine is not None:
        criteria.append(Machine.slug == machine)
    if member is not None:
        criteria.append(UsageSession.member_id == member)
    if since is not None:
        criteria.append(UsageSession.started_at >= since)
    if open_only:
        criteria.append(UsageSession.ended_at.is_(None))
    if clock_suspect is not None:
        criteria.append(UsageSession.clock_suspect.is_(clock_suspect))
    return find_sessions(db, criteria, page)


@router.get("/{session_id}")
def get_session(
    session_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")], caller: BillingRead, db: SessionDep
) -> UsageSessionOut:
    found = find_sessions(db, [UsageSession.session_id == session_id], Page(limit=1, offset=0))
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id}")
    return found[0]

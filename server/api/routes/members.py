"""Members: list, look up, create, change name, e-mail, address or status; set a password;
download everything about one, or erase one (managers)."""

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server import privacy, workshop
from server.api.deps import ClockDep, PageDep, SessionDep
from server.auth import passwords
from server.auth.policy import ManagerRead, ManagerWrite, StaffRead
from server.auth.sessions import revoke_sessions
from server.models import Member, MemberStatus

router = APIRouter(prefix="/members", tags=["members"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
HexUid = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{4,32}$")]
AddressLine = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email | None = None
    badge: HexUid | None = None
    """A badge UID to enrol for the new member at once."""


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: Email | None = None
    address: Annotated[list[AddressLine], Field(max_length=6)] | None = None
    """Printed on their invoices, one line per item."""
    status: MemberStatus | None = None


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str | None
    status: MemberStatus
    is_manager: bool
    is_treasurer: bool
    """Roles are given with ``atelier member role``; a trainer is whoever holds a trainer-level certification."""
    created_at: datetime
    erased_at: datetime | None
    """Set once a manager erased them: their name is a pseudonym, their record frozen."""


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Annotated[str, StringConstraints(min_length=1, max_length=passwords.MAX_LENGTH)]
    """At least 10 characters."""


class ErasureOut(BaseModel):
    member_id: int
    badges: int
    mandates: int
    tokens: int
    sessions: int


@router.get("")
def list_members(
    *, caller: StaffRead, db: SessionDep, page: PageDep, status: MemberStatus | None = None
) -> list[MemberOut]:
    query = sa.select(Member).order_by(Member.name, Member.id).limit(page.limit).offset(page.offset)
    if status is not None:
        query = query.where(Member.status == status)
    return [MemberOut.model_validate(member) for member in db.scalars(query)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_member(body: MemberIn, caller: ManagerWrite, db: SessionDep, clock: ClockDep) -> MemberOut:
    member = workshop.add_member(db, body.name, email=body.email, badge=body.badge, now=clock(), by=caller.id)
    db.commit()
    return MemberOut.model_validate(member)


@router.get("/{member_id}")
def get_member(member_id: int, caller: StaffRead, db: SessionDep) -> MemberOut:
    return MemberOut.model_validate(workshop.get_member(db, member_id))


@router.patch("/{member_id}")
def update_member(
    member_id: int, body: MemberPatch, caller: ManagerWrite, db: SessionDep, clock: ClockDep
) -> MemberOut:
    """409 for an erased member: their record no longer changes."""
    now = clock()
    member = workshop.update_member(
        db,
        member_id,
        name=body.name,
        # An explicit null clears the e-mail; left out, it stays.
        email=body.email if "email" in body.model_fields_set else workshop.UNCHANGED,
        address="\n".join(line for line in body.address if line) if body.address is not None else None,
        by=caller.id,
        now=now,
    )
    if body.status is not None:
        workshop.set_member_status(db, member_id, body.status, by=caller.id, now=now)
    db.commit()
    return MemberOut.model_validate(member)


@router.put("/{member_id}/password", status_code=status.HTTP_204_NO_CONTENT)
def set_password(
    member_id: int, body: PasswordIn, caller: ManagerWrite, db: SessionDep, clock: ClockDep
) -> None:
    """Give a member a password (a first one, or a new one when they lost theirs): their
    browser sessions end. 422 for a password under 10 characters."""
    now = clock()
    passwords.set_password(db, member_id, body.password, now=now, by=caller.id)
    revoke_sessions(db, member_id, now=now)
    db.commit()


@router.get("/{member_id}/export", response_class=JSONResponse)
def export_member(member_id: int, caller: ManagerRead, db: SessionDep, clock: ClockDep) -> JSONResponse:
    """Everything about a member, as ``GET /me/export`` gives it to them (for a request made on paper)."""
    return json_download(privacy.export_member(db, member_id, now=clock()), member_id)


@router.post("/{member_id}/erase")
def erase_member(member_id: int, caller: ManagerWrite, db: SessionDep, clock: ClockDep) -> ErasureOut:
    """Pseudonymise the member's personal data and suspend them for good; invoices, the ledger
    and usage stay (docs/security.md). 409 while something must be settled first (an open
    session, usage or sales not invoiced, a plan, a balance), saying what; or if already erased."""
    erasure = privacy.erase_member(db, member_id, now=clock(), by=caller.id)
    db.commit()
    return ErasureOut(
        member_id=erasure.member_id, badges=erasure.badges, mandates=erasure.mandates,
        tokens=erasure.tokens, sessions=erasure.sessions,
    )  # fmt: skip


def json_download(data: dict[str, object], member_id: int) -> JSONResponse:
    return JSONResponse(
        data, headers={"Content-Disposition": f'attachment; filename="atelier-member-{member_id}.json"'}
    )

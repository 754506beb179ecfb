"""Members: list, look up, create, change name, e-mail or status."""

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, StringConstraints

from server import workshop
from server.api.deps import PageDep, SessionDep
from server.models import Member, MemberStatus

router = APIRouter(prefix="/members", tags=["members"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
HexUid = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{4,32}$")]


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


@router.get("")
def list_members(*, db: SessionDep, page: PageDep, status: MemberStatus | None = None) -> list[MemberOut]:
    query = sa.select(Member).order_by(Member.name, Member.id).limit(page.limit).offset(page.offset)
    if status is not None:
        query = query.where(Member.status == status)
    return [MemberOut.model_validate(member) for member in db.scalars(query)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_member(body: MemberIn, db: SessionDep) -> MemberOut:
    member = workshop.add_member(db, body.name, email=body.email, badge=body.badge)
    db.commit()
    return MemberOut.model_validate(member)


@router.get("/{member_id}")
def get_member(member_id: int, db: SessionDep) -> MemberOut:
    return MemberOut.model_validate(workshop.get_member(db, member_id))


@router.patch("/{member_id}")
def update_member(member_id: int, body: MemberPatch, db: SessionDep) -> MemberOut:
    member = workshop.get_member(db, member_id)
    if body.name is not None:
        member.name = body.name
    if "email" in body.model_fields_set:
        member.email = body.email  # an explicit null clears it
    if body.status is not None:
        workshop.set_member_status(db, member_id, body.status)
    db.commit()
    return MemberOut.model_validate(member)

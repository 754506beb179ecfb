"""Badges: enrol one for a member, look up, disable a lost one (managers)."""

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict

from server import workshop
from server.api.deps import ClockDep, PageDep, SessionDep
from server.api.routes.members import HexUid
from server.auth.policy import ManagerRead, ManagerWrite
from server.models import Badge

router = APIRouter(prefix="/badges", tags=["badges"])

UidPath = Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{4,32}$", description="hex UID, any case")]


class BadgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uid: HexUid
    member_id: int


class BadgePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: bool


class BadgeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    uid: str
    member_id: int
    active: bool
    enrolled_at: datetime


@router.get("")
def list_badges(
    *, caller: ManagerRead, db: SessionDep, page: PageDep, member: int | None = None
) -> list[BadgeOut]:
    query = sa.select(Badge).order_by(Badge.id).limit(page.limit).offset(page.offset)
    if member is not None:
        query = query.where(Badge.member_id == member)
    return [BadgeOut.model_validate(badge) for badge in db.scalars(query)]


@router.post("", status_code=status.HTTP_201_CREATED)
def enrol_badge(body: BadgeIn, caller: ManagerWrite, db: SessionDep, clock: ClockDep) -> BadgeOut:
    badge = workshop.enrol_badge(db, body.member_id, body.uid, now=clock(), by=caller.id)
    db.commit()
    return BadgeOut.model_validate(badge)


@router.get("/{uid}")
def get_badge(uid: UidPath, caller: ManagerRead, db: SessionDep) -> BadgeOut:
    return BadgeOut.model_validate(workshop.get_badge(db, uid))


@router.patch("/{uid}")
def update_badge(
    uid: UidPath, body: BadgePatch, caller: ManagerWrite, db: SessionDep, clock: ClockDep
) -> BadgeOut:
    badge = workshop.set_badge_active(db, uid, body.active, by=caller.id, now=clock())
    db.commit()
    return BadgeOut.model_validate(badge)

"""Machines: their gateway, the skills they require, lockouts and second factors. Every member
sees them; managers add them, lock them out and ask for a second factor on them."""

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy.orm import selectinload

from protocol.messages import CommandAction
from server import workshop
from server.api.deps import ClockDep, MqttDep, PageDep, SessionDep, Slug
from server.auth.policy import ManagerWrite, SignedIn
from server.ids import Ident
from server.models import Gateway, Machine

router = APIRouter(prefix="/machines", tags=["machines"])

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class MachineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Ident
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    machine_class: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    """E.g. "sewing", "overlocker", "fdm-printer"."""
    gateway: Ident | None = None
    required_skills: Annotated[list[Ident], Field(max_length=32)] = []
    second_factor: bool = False
    """Also ask for a confirmation in the web app before the badge (docs/security.md, "Badges")."""


class SecondFactorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    second_factor: bool


class LockoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    locked_out: bool
    reason: Reason | None = None

    @model_validator(mode="after")
    def _reason_when_locking(self) -> "LockoutIn":
        if self.locked_out and self.reason is None:
            raise ValueError("say why the machine is locked out: members will read it")
        return self


class MachineOut(BaseModel):
    slug: str
    name: str
    machine_class: str
    gateway: str | None
    required_skills: list[str]
    locked_out: bool
    lockout_reason: str | None
    second_factor: bool

    @classmethod
    def of(cls, machine: Machine) -> "MachineOut":
        return cls(
            slug=machine.slug,
            name=machine.name,
            machine_class=machine.machine_class,
            gateway=machine.gateway.slug if machine.gateway is not None else None,
            required_skills=[skill.slug for skill in machine.required_skills],
            locked_out=machine.locked_out,
            lockout_reason=machine.lockout_reason,
            second_factor=machine.second_factor,
        )


@router.get("")
def list_machines(
    *, caller: SignedIn, db: SessionDep, page: PageDep, gateway: Ident | None = None
) -> list[MachineOut]:
    query = (
        sa.select(Machine)
        .options(selectinload(Machine.gateway), selectinload(Machine.required_skills))
        .order_by(Machine.slug)
        .limit(page.limit)
        .offset(page.offset)
    )
    if gateway is not None:
        query = query.join(Gateway, Gateway.id == Machine.gateway_id).where(Gateway.slug == gateway)
    return [MachineOut.of(machine) for machine in db.scalars(query)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_machine(body: MachineIn, caller: ManagerWrite, db: SessionDep) -> MachineOut:
    machine = workshop.add_machine(
        db,
        body.slug,
        body.name,
        machine_class=body.machine_class,
        gateway=body.gateway,
        required_skills=body.required_skills,
    )
    if body.second_factor:
        machine = workshop.set_second_factor(db, machine.slug, True, by=caller.id)
    db.commit()
    return MachineOut.of(machine)


@router.get("/{slug}")
def get_machine(slug: Slug, caller: SignedIn, db: SessionDep) -> MachineOut:
    return MachineOut.of(workshop.get_machine(db, slug))


@router.patch("/{slug}/lockout")
def set_lockout(
    *, slug: Slug, body: LockoutIn, caller: ManagerWrite, db: SessionDep, mqtt: MqttDep, clock: ClockDep
) -> MachineOut:
    """Lock a machine out (or back in). Locking out also ends the session open on it, once the
    machine is idle: the gateway is sent a ``lock`` command. The lockout lasts across restarts of
    the server (it is in the database) and of the gateway (it is in its signed allowlist)."""
    machine = workshop.set_lockout(db, slug, body.locked_out, body.reason, by=caller.id, now=clock())
    db.commit()
    if body.locked_out and machine.gateway is not None and mqtt is not None:
        mqtt.send_command(machine.gateway.slug, CommandAction.LOCK, machine.slug, body.reason)
    return MachineOut.of(machine)


@router.patch("/{slug}/second-factor")
def set_second_factor(
    *, slug: Slug, body: SecondFactorIn, caller: ManagerWrite, db: SessionDep, clock: ClockDep
) -> MachineOut:
    """Ask (or stop asking) a member to confirm in the web app that they are at the machine
    before their badge is granted on it; such a machine is never granted offline."""
    machine = workshop.set_second_factor(db, slug, body.second_factor, by=caller.id, now=clock())
    db.commit()
    return MachineOut.of(machine)

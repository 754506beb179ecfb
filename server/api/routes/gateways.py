"""Gateways: register one, and see which are online and when they were last heard of (managers)."""

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy.orm import selectinload

from server import workshop
from server.api.deps import PageDep, SessionDep, SettingsDep, Slug
from server.auth.policy import ManagerRead, ManagerWrite
from server.ids import Ident
from server.models import Gateway, GatewayState

router = APIRouter(prefix="/gateways", tags=["gateways"])


class GatewayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Ident
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] = ""
    site: Ident | None = None
    """Defaults to the site this server serves."""


class GatewayOut(BaseModel):
    slug: str
    site: str
    name: str
    state: GatewayState
    boot: int
    software: str
    last_seen_at: datetime | None
    machines: list[str]

    @classmethod
    def of(cls, gateway: Gateway) -> "GatewayOut":
        return cls(
            slug=gateway.slug,
            site=gateway.site,
            name=gateway.name,
            state=gateway.state,
            boot=gateway.boot,
            software=gateway.software,
            last_seen_at=gateway.last_seen_at,
            machines=[machine.slug for machine in gateway.machines],
        )


@router.get("")
def list_gateways(
    *,
    caller: ManagerRead,
    db: SessionDep,
    page: PageDep,
    site: Ident | None = None,
    state: GatewayState | None = None,
) -> list[GatewayOut]:
    query = (
        sa.select(Gateway)
        .options(selectinload(Gateway.machines))
        .order_by(Gateway.site, Gateway.slug)
        .limit(page.limit)
        .offset(page.offset)
    )
    if site is not None:
        query = query.where(Gateway.site == site)
    if state is not None:
        query = query.where(Gateway.state == state)
    return [GatewayOut.of(gateway) for gateway in db.scalars(query)]


@router.post("", status_code=status.HTTP_201_CREATED)
def register_gateway(
    body: GatewayIn, caller: ManagerWrite, db: SessionDep, settings: SettingsDep
) -> GatewayOut:
    gateway = workshop.add_gateway(db, body.slug, site=body.site or settings.site, name=body.name)
    db.commit()
    return GatewayOut.of(gateway)


@router.get("/{slug}")
def get_gateway(slug: Slug, caller: ManagerRead, db: SessionDep) -> GatewayOut:
    return GatewayOut.of(workshop.get_gateway(db, slug))

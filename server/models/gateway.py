"""Gateways: the Raspberry Pis that read badges and switch machines."""

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, enum_type

if TYPE_CHECKING:
    from server.models.machine import Machine


class GatewayState(StrEnum):
    """What the server last heard from a gateway; ``unknown`` until its first status."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"
    LOST = "lost"


class Gateway(Base):
    """Registered by a manager: the server never answers a gateway it does not know."""

    __tablename__ = "gateways"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    state: Mapped[GatewayState] = mapped_column(
        enum_type(GatewayState, "gateway_state"), default=GatewayState.UNKNOWN
    )
    boot: Mapped[int] = mapped_column(default=0)
    software: Mapped[str] = mapped_column(String(64), default="")
    last_seen_at: Mapped[datetime | None]

    machines: Mapped[list["Machine"]] = relationship(back_populates="gateway", order_by="Machine.slug")

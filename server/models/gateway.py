"""Gateways: the Raspberry Pis that read badges and switch machines."""

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, String
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
    allowlist_version: Mapped[int] = mapped_column(BigInteger, default=0)
    """The version of the last allowlist snapshot issued for this gateway (0: none yet).

    Bumped by a single compare-and-set UPDATE before the snapshot is signed, so no two
    server processes, nor two runs of one, ever issue the same version."""
    allowlist_digest: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 (hex) of that snapshot's content: its machines and entries, not its version or times."""
    allowlist_issued_at: Mapped[datetime | None]
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    """The gateway's clock minus the server's, in ms, from its last live ``online`` status
    (positive: the gateway is ahead). None until one was received."""
    clock_checked_at: Mapped[datetime | None]
    """When the server received the status ``clock_offset_ms`` was measured from."""

    machines: Mapped[list["Machine"]] = relationship(back_populates="gateway", order_by="Machine.slug")

"""What the server knows of each gateway's link: online, offline or lost, and since when."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import GatewayState as WireState
from protocol.messages import GatewayStatus
from server.db import rowcount
from server.models import Gateway, GatewayState


class StatusOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # a last will from an earlier boot, delivered late or retained
    UNKNOWN_GATEWAY = "unknown_gateway"


def record_status(
    db: Session, site: str, gateway_slug: str, status: GatewayStatus, now: datetime
) -> StatusOutcome:
    """Apply a gateway's status (or its last will) and commit.

    A ``lost`` will whose boot is older than the boot the server knows was
    left by an earlier run of the gateway, which has since come back: it must
    not mark the live gateway lost. The check is in the UPDATE itself, so two
    server processes applying statuses at once cannot undo each other.
    """
    conditions = [Gateway.slug == gateway_slug, Gateway.site == site]
    values: dict[str, object] = {"state": GatewayState(status.state.value), "boot": status.boot}
    if status.state is WireState.LOST:
        conditions.append(Gateway.boot <= status.boot)
    else:
        # The broker says "lost" after the keep-alive ran out: that is not a sighting.
        values["last_seen_at"] = now
    if status.software:
        values["software"] = status.software
    updated = rowcount(
        db.execute(
            sa.update(Gateway).where(*conditions).values(values).execution_options(synchronize_session=False)
        )
    )
    db.commit()
    if updated:
        return StatusOutcome.APPLIED
    known = db.scalar(sa.select(Gateway.id).where(Gateway.slug == gateway_slug, Gateway.site == site))
    return StatusOutcome.UNKNOWN_GATEWAY if known is None else StatusOutcome.STALE

"""Gateway clocks: how far each one is off the server's, and sessions recorded while one was.

A gateway stamps its events with its wall clock (``at_ms``) and measures durations on its
monotonic clock. Billing uses the durations only, so a wrong wall clock never changes
what a member pays; it does put a session on the wrong day, or make it look longer or
shorter than it was. The server therefore:

- measures each gateway's offset (its clock minus the server's) from every live ``online``
  status it receives, whose ``at_ms`` is when the gateway made it (:func:`record_offset`);
- flags a usage session ``clock_suspect`` when that offset was beyond the tolerance when
  one of its events was ingested, or when its wall-clock span disagrees with its
  monotonic ``unlocked_ms`` by more than the tolerance: the clock jumped mid-session
  (:func:`suspect`).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.db import table
from server.models import Gateway, GatewayState

DEFAULT_TOLERANCE_MS = 120_000

_gateways = table(Gateway).c


@dataclass(frozen=True, slots=True)
class Link:
    """The link state the server knew of a gateway before applying a status."""

    state: GatewayState
    boot: int


def link_of(db: Session, site: str, gateway_slug: str) -> Link | None:
    row = db.execute(
        sa.select(_gateways.state, _gateways.boot).where(
            _gateways.slug == gateway_slug, _gateways.site == site
        )
    ).first()
    return None if row is None else Link(GatewayState(row[0]), int(row[1]))


def record_offset(db: Session, site: str, gateway_slug: str, offset_ms: int, now: datetime) -> None:
    """Store the gateway's clock offset measured at ``now`` (gateway minus server, ms) and commit."""
    db.execute(
        sa.update(table(Gateway))
        .where(_gateways.slug == gateway_slug, _gateways.site == site)
        .values(clock_offset_ms=offset_ms, clock_checked_at=now)
    )
    db.commit()


def span_gap_ms(started_at: datetime, ended_at: datetime | None, unlocked_ms: int) -> int | None:
    """How far the session's wall-clock span is from its monotonic duration; None while it is open."""
    if ended_at is None:
        return None
    return abs((ended_at - started_at) // timedelta(milliseconds=1) - unlocked_ms)


def suspect(
    *,
    offset_ms: int | None,
    started_at: datetime,
    ended_at: datetime | None,
    unlocked_ms: int,
    tolerance_ms: int = DEFAULT_TOLERANCE_MS,
) -> bool:
    """Whether a session's moments cannot be trusted, from what is known of it so far."""
    if offset_ms is not None and abs(offset_ms) > tolerance_ms:
        return True
    gap = span_gap_ms(started_at, ended_at, unlocked_ms)
    return gap is not None and gap > tolerance_ms

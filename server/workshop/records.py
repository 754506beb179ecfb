"""What every change to the workshop's records shares: checking slugs and times, and adding a row."""

from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from protocol.ids import is_valid_id
from server.clock import utc_now
from server.workshop.errors import InvalidValue

T = TypeVar("T")

UNCHANGED: Any = object()
"""A keyword left out, where None means something (clear the value)."""


def check_slug(slug: str, what: str) -> str:
    if not is_valid_id(slug):
        raise InvalidValue(f"invalid {what} id {slug!r}: use a-z, 0-9 and '-', 1 to 64 characters")
    return slug


def utc(moment: datetime, what: str) -> datetime:
    """``moment`` in UTC, as it will read back from the database."""
    if moment.utcoffset() is None:
        raise InvalidValue(f"{what} needs a time zone")
    return moment.astimezone(UTC)


def when(now: datetime | None) -> datetime:
    return utc_now() if now is None else utc(now, "now")


def added(db: Session, thing: T) -> T:
    db.add(thing)
    db.flush()
    return thing

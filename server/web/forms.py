"""Reading what a form sent, and doing what it asks in one transaction.

Every field arrives as text and is read here, so that a wrong value is said on the page in
the reader's language (:class:`BadField`), not answered with the API's JSON 422.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from server.billing.errors import InvalidAmount
from server.billing.money import parse_cents
from server.billing.periods import WORKSHOP_TZ
from server.web.errors import REFUSALS, error_key
from server.web.render import redirect


class BadField(ValueError):
    """A field that cannot be read; ``key`` is the catalogue's way to say so."""

    def __init__(self, key: str = "error.invalid_value") -> None:
        super().__init__(key)
        self.key = key


def text(value: str, *, required: bool = True, limit: int = 200) -> str:
    cleaned = value.strip()
    if (required and not cleaned) or len(cleaned) > limit:
        raise BadField("error.missing_field" if not cleaned else "error.invalid_value")
    return cleaned


def optional_text(value: str, limit: int = 200) -> str | None:
    return text(value, required=False, limit=limit) or None


def number(value: str, *, minimum: int | None = None) -> int:
    try:
        found = int(value.strip())
    except ValueError:
        raise BadField() from None
    if minimum is not None and found < minimum:
        raise BadField()
    return found


def optional_number(value: str, *, minimum: int | None = None) -> int | None:
    return number(value, minimum=minimum) if value.strip() else None


def day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadField("error.invalid_date") from None


def optional_day(value: str) -> date | None:
    return day(value) if value.strip() else None


def end_of_day(value: date) -> datetime:
    """The first moment after ``value`` in the workshop: a certification "until the 30th" lasts the 30th."""
    return datetime.combine(value + timedelta(days=1), time.min, tzinfo=WORKSHOP_TZ)


def cents(value: str) -> int:
    """An amount in euros as people write it (``12,50``, ``12.5``, ``3``) in cents."""
    try:
        return parse_cents(value.strip())
    except InvalidAmount:
        raise BadField("error.invalid_amount") from None


def optional_cents(value: str) -> int | None:
    return cents(value) if value.strip() else None


def attempt(
    db: Session,
    action: Callable[[], dict[str, object] | None],
    *,
    back: str,
    ok: str,
    on_error: str | None = None,
) -> RedirectResponse:
    """Do ``action`` and commit, then go ``back`` saying ``ok`` (with the values ``action``
    returned); or roll back and say why not."""
    try:
        values = action() or {}
        db.commit()
    except BadField as error:
        db.rollback()
        return redirect(on_error or back, error=error.key)
    except REFUSALS as error:
        db.rollback()
        return redirect(on_error or back, error=error_key(error))
    return redirect(back, ok=ok, values=values)

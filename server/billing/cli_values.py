"""Reading and showing the treasurer's values on the command line, for the ``atelier billing`` commands.

Values are read here rather than by argparse, so that a wrong amount, rate or day is
refused like any other billing refusal: one line saying why, exit 1, nothing changed.
Each refusal is a :class:`~server.billing.errors.BillingError`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.billing.money import Rate
    from server.billing.periods import Period

    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

Action = Callable[["Session", argparse.Namespace], int]
Refusing = Callable[[Action], Callable[[argparse.Namespace], int]]
"""What :func:`server.billing.cli._refusing` is: one transaction, a refusal on one line."""

RATE_UNITS = {"min": 1, "minute": 1, "h": 60, "hour": 60}


def now() -> datetime:
    from server.clock import utc_now  # noqa: PLC0415

    return utc_now()


def day(text: str) -> date:
    from server.billing.errors import InvalidPeriod  # noqa: PLC0415

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidPeriod(f"{text!r} is not a day: write YYYY-MM-DD") from None


def month(text: str) -> Period:
    from server.billing.periods import Period  # noqa: PLC0415

    return Period.parse(text)


def cents(text: str, what: str) -> int:
    from server.billing.catalogue import check_not_negative  # noqa: PLC0415
    from server.billing.money import parse_cents  # noqa: PLC0415

    return check_not_negative(parse_cents(text), what)


def rate(text: str, what: str) -> Rate:
    """``6,00/h`` (per hour) or ``0,10/min`` (per minute), as an exact per-minute rate."""
    from server.billing.errors import InvalidAmount  # noqa: PLC0415
    from server.billing.money import parse_rate  # noqa: PLC0415

    amount, _, unit = text.partition("/")
    per = RATE_UNITS.get(unit.strip().lower())
    if per is None:
        raise InvalidAmount(
            f"write {what} in euros per hour or per minute, e.g. 6,00/h or 0,10/min: not {text!r}"
        )
    return parse_rate(amount, per)


def vat(text: str) -> int:
    """A VAT rate in per cent (``20``, ``5,5``) as basis points."""
    from server.billing.catalogue import check_vat  # noqa: PLC0415
    from server.billing.errors import InvalidAmount  # noqa: PLC0415
    from server.billing.money import parse_cents  # noqa: PLC0415

    try:
        return check_vat(parse_cents(text.strip().removesuffix("%")))
    except InvalidAmount:
        raise InvalidAmount(f"{text!r} is not a VAT rate: write it in per cent, e.g. 20 or 5,5") from None


def whole(text: str, what: str) -> int:
    from server.billing.errors import InvalidAmount  # noqa: PLC0415

    try:
        return int(text.strip())
    except ValueError:
        raise InvalidAmount(f"{what} is a whole number, not {text!r}") from None


def moment(text: str) -> datetime:
    """An ISO date and time; without an offset, the workshop's local time."""
    from server.billing.errors import InvalidPeriod  # noqa: PLC0415
    from server.billing.periods import WORKSHOP_TZ  # noqa: PLC0415

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidPeriod(f"{text!r} is not a time: write YYYY-MM-DD HH:MM") from None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=WORKSHOP_TZ)


def euros(cents: int) -> str:
    from server.billing.money import format_cents  # noqa: PLC0415

    return format_cents(cents, "en")


def group(commands: Commands, name: str, help_text: str) -> Commands:
    parser = commands.add_parser(name, help=help_text)
    found: Commands = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
    return found

"""Billing periods (calendar months) and the workshop's days.

A session belongs to the day, and so to the month, **on which it started, in the
workshop's time zone** (Europe/Paris by default): a session from 23:30 to 00:40 is
billed on the day it started, whole. Price versions change at the start of a day, so
all the sessions of one member on one machine on one day share one price version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from server.billing.errors import InvalidPeriod

WORKSHOP_TZ = ZoneInfo("Europe/Paris")

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A calendar month, written ``YYYY-MM``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (1 <= self.month <= 12 and 2000 <= self.year <= 9998):
            raise InvalidPeriod(f"{self.year:04d}-{self.month:02d} is not a month: write YYYY-MM")

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.match(text.strip())
        if match is None:
            raise InvalidPeriod(f"{text!r} is not a month: write YYYY-MM, e.g. 2026-03")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, day: date) -> Period:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return self.next().first_day - timedelta(days=1)

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and (day.year, day.month) == (self.year, self.month)

    def bounds(self, tz: tzinfo = WORKSHOP_TZ) -> tuple[datetime, datetime]:
        """``[start, end)`` of the month as aware datetimes, for selecting sessions by ``started_at``."""
        start = datetime.combine(self.first_day, datetime.min.time(), tzinfo=tz)
        end = datetime.combine(self.next().first_day, datetime.min.time(), tzinfo=tz)
        return start, end


def workshop_day(moment: datetime, tz: tzinfo = WORKSHOP_TZ) -> date:
    """The day ``moment`` falls on in the workshop; a naive datetime is refused."""
    if moment.utcoffset() is None:
        raise InvalidPeriod(f"{moment.isoformat()} has no time zone: billing needs aware datetimes")
    return moment.astimezone(tz).date()

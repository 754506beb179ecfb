"""Billing periods are calendar months; a session belongs to the workshop day it started on."""

from datetime import UTC, date, datetime

import pytest

from server.billing.errors import InvalidPeriod
from server.billing.periods import WORKSHOP_TZ, Period, workshop_day


def test_a_period_is_read_and_written_as_yyyy_mm() -> None:
    march = Period.parse("2026-03")
    assert march == Period(2026, 3)
    assert str(march) == "2026-03"
    assert march.first_day == date(2026, 3, 1)
    assert march.last_day == date(2026, 3, 31)
    assert Period(2028, 2).last_day == date(2028, 2, 29)


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "2026-3", "26-03", "march", "", "2026-03-01", "1999-12"]
)
def test_a_period_that_does_not_exist_is_refused(text: str) -> None:
    with pytest.raises(InvalidPeriod) as caught:
        Period.parse(text)
    assert isinstance(caught.value, ValueError)


def test_periods_follow_each_other() -> None:
    assert Period(2026, 12).next() == Period(2027, 1)
    assert Period(2027, 1).previous() == Period(2026, 12)
    assert Period(2026, 3).next().previous() == Period(2026, 3)
    assert Period(2026, 3) < Period(2026, 4) < Period(2027, 1)
    assert date(2026, 3, 31) in Period(2026, 3)
    assert date(2026, 4, 1) not in Period(2026, 3)


def test_a_period_bounds_are_local_midnights() -> None:
    start, end = Period(2026, 3).bounds()
    assert start.astimezone(UTC) == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # summer time began on the 29th


def test_a_session_belongs_to_the_local_day_it_started() -> None:
    late_evening = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)  # 00:30 on 1 April in Lyon
    assert workshop_day(late_evening) == date(2026, 4, 1)
    assert workshop_day(late_evening, tz=UTC) == date(2026, 3, 31)
    assert workshop_day(datetime(2026, 3, 2, 9, tzinfo=WORKSHOP_TZ)) == date(2026, 3, 2)
    with pytest.raises(InvalidPeriod):
        workshop_day(datetime(2026, 3, 2, 9))  # a naive datetime

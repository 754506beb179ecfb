"""The rating engine, by worked examples a treasurer can check by hand."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings

from server.billing.errors import InvalidAmount, InvalidPeriod, NoPrice
from server.billing.lines import ChargeLine, LineKind, MachineRef, Unit
from server.billing.money import Rate
from server.billing.periods import Period, workshop_day
from server.billing.prices import PriceBook
from server.billing.rating import MeteredSession, Rating, RatingCache, plan_fee_line, rate_usage
from tests.server.billing.sample import (
    ALICE,
    BOB,
    BOOK,
    MARCH,
    OVERLOCKER,
    PLAN,
    PRINTER,
    SEWING,
    SEWING_2,
    SEWING_PRICE,
    at,
    sale,
    session,
)
from tests.server.billing.strategies import books, metered_sessions, plans


def summary(rating: Rating) -> list[tuple[str, int, int]]:
    return [(str(line.kind), line.quantity, line.amount_cents) for line in rating.lines]


def test_a_session_within_the_grace_is_a_free_try() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=2.9)], BOOK)
    assert rating.lines == ()
    assert rating.sessions[0].charge.free_try


def test_running_time_after_grace_in_increments_with_a_session_fee() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=62)], BOOK)
    # 62 min - 3 grace = 59 -> 60 min (5 min increments, up) at 6.00 €/h; the fee; above the minimum
    assert summary(rating) == [("running", 60, 600), ("session_fee", 1, 50)]
    line = rating.lines[0]
    assert (line.unit, line.unit_price, line.day, line.price_version) == (
        Unit.MINUTE,
        Rate.per_hour(600),
        date(2026, 3, 2),
        "member-sewing-2026",
    )


def test_a_short_session_is_topped_up_to_the_minimum() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=4)], BOOK)
    # 1 min -> 5 min = 0.50 €, + 0.50 € fee = 1.00 €: 0.50 € more makes the 1.50 € minimum
    assert summary(rating) == [("running", 5, 50), ("session_fee", 1, 50), ("minimum", 1, 50)]
    assert rating.total_cents == 150


def test_idle_time_is_billed_at_its_own_rate_without_grace() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=33, idle_min=21)], BOOK)
    # running 30 min = 3.00 €; idle 21 -> 25 min at 0.90 €/h = 0.375 -> 0.38 €
    assert summary(rating) == [("running", 30, 300), ("idle", 25, 38), ("session_fee", 1, 50)]


def test_idle_time_alone_is_not_a_free_try() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=1, idle_min=4)], BOOK)
    assert summary(rating) == [("idle", 5, 8), ("session_fee", 1, 50), ("minimum", 1, 92)]


def test_free_idle_time_costs_nothing() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=30, idle_min=45, machine=OVERLOCKER)], BOOK)
    assert summary(rating) == [("running", 30, 225)]


def test_each_line_is_rounded_once() -> None:
    sessions = [session(f"s{i}", at(2, 9 + i), running_min=7, machine=PRINTER) for i in range(3)]
    printer_per_minute = replace(BOOK.versions[2], increment_minutes=1)
    rating = rate_usage(sessions, PriceBook((printer_per_minute,)))
    # 3 x 7 min at 0.90 €/h = 31.5 c -> 32 c for the line (not 3 x 11 c)
    assert summary(rating) == [("running", 21, 32)]


def test_the_daily_cap_bounds_a_member_machine_and_day() -> None:
    sessions = [
        session("a", at(3, 9), running_min=303),
        session("b", at(3, 14), running_min=203),
        session("c", at(4, 9), running_min=63),
        session("d", at(3, 10), running_min=63, machine=SEWING_2),
        session("e", at(3, 11), running_min=63, member=BOB),
    ]
    rating = rate_usage(sessions, BOOK)
    by_day: dict[tuple[int, str, date | None], int] = {}
    for line in rating.lines:
        assert line.machine is not None
        key = (line.member.id, line.machine.slug, line.day)
        by_day[key] = by_day.get(key, 0) + line.amount_cents
    assert by_day == {
        (ALICE.id, "sewing-1", date(2026, 3, 3)): 2500,  # 30.00 + 20.00 + 1.00 fees, capped at 25.00
        (ALICE.id, "sewing-2", date(2026, 3, 3)): 650,
        (ALICE.id, "sewing-1", date(2026, 3, 4)): 650,
        (BOB.id, "sewing-1", date(2026, 3, 3)): 650,
    }
    cap = next(line for line in rating.lines if line.kind is LineKind.DAILY_CAP)
    assert (cap.amount_cents, cap.unit_price, cap.day) == (-2600, Rate(2500), date(2026, 3, 3))


def test_the_cap_counts_what_was_invoiced_before_for_that_day() -> None:
    rating = rate_usage(
        [session("late", at(3, 18), running_min=203)],
        BOOK,
        charged_before={(ALICE.id, "sewing-1", date(2026, 3, 3)): 2000},
    )
    assert rating.total_cents == 500
    over = rate_usage(
        [session("late", at(3, 18), running_min=203)],
        BOOK,
        charged_before={(ALICE.id, "sewing-1", date(2026, 3, 3)): 2600},
    )
    assert over.total_cents == 0


def test_plan_minutes_are_taken_in_session_order_within_the_month() -> None:
    sessions = [
        session("second", at(9, 9), running_min=203),
        session("first", at(2, 9), running_min=503),
        session("april", at(2, 9, month=4), running_min=63),
    ]
    plans = {(ALICE.id, MARCH): PLAN, (ALICE.id, Period(2026, 4)): PLAN}
    rating = rate_usage(sessions, BOOK, plans=plans)
    charges = {rated.session_id: rated.charge for rated in rating.sessions}
    assert (charges["first"].included_minutes, charges["first"].charged_minutes) == (500, 0)
    assert (charges["second"].included_minutes, charges["second"].charged_minutes) == (100, 100)
    assert (charges["april"].included_minutes, charges["april"].charged_minutes) == (60, 0)
    assert summary(rating) == [
        ("included", 500, 0),
        ("session_fee", 1, 50),  # covered: only the fee, no minimum
        ("running", 100, 1000),
        ("included", 100, 0),
        ("session_fee", 1, 50),
        ("included", 60, 0),
        ("session_fee", 1, 50),
    ]
    assert rating.lines[0].item == "Couture 10 h"


def test_plan_minutes_used_on_earlier_invoices_are_not_given_twice() -> None:
    rating = rate_usage(
        [session("s", at(9, 9), running_min=63)],
        BOOK,
        plans={(ALICE.id, MARCH): PLAN},
        plan_minutes_used={(ALICE.id, MARCH, "industrial-sewing"): 580},
    )
    assert rating.sessions[0].charge.included_minutes == 20


def test_a_plan_covers_only_its_machine_classes() -> None:
    rating = rate_usage(
        [session("s", at(2, 9), running_min=30, machine=OVERLOCKER)], BOOK, plans={(1, MARCH): PLAN}
    )
    assert summary(rating) == [("running", 30, 225)]


def test_a_price_change_never_re_prices_past_sessions() -> None:
    april = replace(
        SEWING_PRICE, id="member-sewing-2026-04", valid_from=date(2026, 4, 1), running_rate=Rate(800, 60)
    )
    before = [session("s", at(31, 22, 30), running_min=63)]  # 21:30 UTC: 23:30 in Lyon, still 31 March
    old = rate_usage(before, BOOK)
    new = rate_usage(before, PriceBook((*BOOK.versions, april)))
    assert old == new
    after = rate_usage([session("t", at(2, 9, month=4), running_min=63)], PriceBook((*BOOK.versions, april)))
    assert after.lines[0].price_version == "member-sewing-2026-04"
    assert after.lines[0].amount_cents == 800


def test_late_sessions_become_adjustments_in_the_open_period() -> None:
    april = Period(2026, 4)
    rating = rate_usage(
        [session("late", at(30, 9), running_min=63), session("now", at(2, 9, month=4), running_min=63)],
        BOOK,
        billing_period=april,
    )
    assert {line.adjustment_for for line in rating.lines if line.day and line.day < date(2026, 4, 1)} == {
        MARCH
    }
    assert {line.adjustment_for for line in rating.lines if line.day and line.day >= date(2026, 4, 1)} == {
        None
    }
    with pytest.raises(InvalidPeriod):
        rate_usage([session("future", at(2, 9, month=5), running_min=63)], BOOK, billing_period=april)


def test_consumables_are_extra_lines_per_day_and_are_not_capped() -> None:
    rating = rate_usage(
        [session("s", at(5, 9), running_min=600, machine=SEWING)],
        BOOK,
        sales=[sale("f1", at(5, 10), 125), sale("f2", at(5, 16), 75), sale("f3", at(6, 9), 1)],
    )
    consumables = [line for line in rating.lines if line.kind is LineKind.CONSUMABLE]
    assert [(line.day, line.quantity, line.amount_cents, line.unit) for line in consumables] == [
        (date(2026, 3, 5), 200, 500, Unit.GRAM),
        (date(2026, 3, 6), 1, 3, Unit.GRAM),
    ]
    assert rating.total_cents == 2500 + 500 + 3


def test_rating_refuses_what_it_cannot_price() -> None:
    with pytest.raises(InvalidAmount):
        rate_usage([session("s", at(2, 9), 10), session("s", at(3, 9), 10)], BOOK)
    with pytest.raises(NoPrice):
        rate_usage([session("s", at(2, 9), 10, machine=MachineRef("kiln-1", "Four", "ceramics"))], BOOK)
    with pytest.raises(InvalidAmount):
        session("s", at(2, 9), -1)
    with pytest.raises(InvalidAmount):
        sale("f", at(2, 9), 0)


def test_a_plan_fee_is_a_line_of_its_own() -> None:
    line = plan_fee_line(ALICE, PLAN, MARCH)
    assert (line.kind, line.amount_cents, line.item, line.day, line.unit) == (
        LineKind.PLAN_FEE,
        3000,
        "Couture 10 h",
        date(2026, 3, 1),
        Unit.MONTH,
    )


def test_a_negative_line_is_refused_except_a_cap() -> None:
    with pytest.raises(InvalidAmount):
        ChargeLine(LineKind.RUNNING, ALICE, 1, Unit.MINUTE, Rate(1), -1, 0)
    with pytest.raises(InvalidAmount):
        ChargeLine(LineKind.DAILY_CAP, ALICE, 1, Unit.DAY, Rate(1), 1, 0)


def test_lines_come_in_a_fixed_order() -> None:
    sessions = [
        session("p", at(2, 9), 63, machine=PRINTER),
        session("b", at(2, 9), 63, member=BOB),
        session("s", at(2, 8), 63, idle_min=10),
    ]
    rating = rate_usage(sessions, BOOK)
    keys = [line.sort_key() for line in rating.lines]
    assert keys == sorted(keys)
    assert [line.member.id for line in rating.lines][-1] == BOB.id


@pytest.mark.parametrize(
    "zone", ["Europe/Paris", "Australia/Lord_Howe", "America/St_Johns", "Asia/Kathmandu"]
)
def test_each_session_is_on_its_workshop_day_around_the_clock_changes(zone: str) -> None:
    # Rating keeps a moment's day per quarter of an hour: never across a midnight or a change
    # of offset, in zones that change by half an hour or sit at :30 and :45 from UTC.
    tz = ZoneInfo(zone)
    starts = [  # four days around each change of 2026: North America, Europe, Lord Howe, both ways
        datetime(2026, month, day, tzinfo=UTC)
        for month, day in ((3, 6), (3, 27), (4, 3), (10, 2), (10, 23), (10, 30))
    ]
    moments = [
        start + timedelta(minutes=7 * step, seconds=step % 60, microseconds=step % 7)
        for start in starts
        for step in range(4 * 24 * 60 // 7)
    ]
    moments += [
        start + timedelta(minutes=15 * step) - timedelta(microseconds=1)
        for start in starts
        for step in range(400)
    ]
    book = PriceBook((replace(SEWING_PRICE, valid_from=date(2026, 1, 1)),))
    cache = RatingCache(book)
    for _ in range(2):  # the second time, every day comes from what the first one kept
        rating = rate_usage([session(f"s{n}", moment, 10) for n, moment in enumerate(moments)], cache, tz=tz)
        days = {rated.session_id: rated.day for rated in rating.sessions}
        assert [days[f"s{n}"] for n in range(len(moments))] == [workshop_day(m, tz) for m in moments]


@settings(max_examples=50)
@given(metered_sessions(), metered_sessions(), books(), plans())
def test_what_rating_keeps_for_the_next_payer_changes_nothing(
    first: list[MeteredSession], second: list[MeteredSession], book: PriceBook, member_plans: Any
) -> None:
    cache = RatingCache(book)
    for sessions in (first, second, first):
        kept = rate_usage(sessions, cache, plans=member_plans, billing_period=MARCH)
        assert kept == rate_usage(sessions, book, plans=member_plans, billing_period=MARCH)


class _NoOffset(tzinfo):
    def utcoffset(self, moment: datetime | None) -> None:
        return None

    def dst(self, moment: datetime | None) -> None:
        return None

    def tzname(self, moment: datetime | None) -> str:
        return "nowhere"


@pytest.mark.parametrize("started", [datetime(2026, 3, 2, 9), datetime(2026, 3, 2, 9, tzinfo=_NoOffset())])
def test_a_session_without_a_time_zone_is_refused(started: datetime) -> None:
    with pytest.raises(InvalidPeriod, match="no time zone"):
        rate_usage([session("s", started, 10)], BOOK)

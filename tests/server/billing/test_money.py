"""Money: the rounding rules, exact rates, and amounts read and written as the treasurer does."""

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.billing.errors import BillingError, InvalidAmount
from server.billing.money import (
    MS_PER_MINUTE,
    MinuteRounding,
    Rate,
    amount_of,
    billable_minutes,
    decimal_rate,
    format_cents,
    format_rate,
    parse_cents,
    parse_rate,
    round_half_up,
    vat_on,
)

rates = st.builds(Rate, st.integers(0, 100_000), st.integers(1, 10_000))


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6))
def test_round_half_up_is_decimal_round_half_up(numerator: int, denominator: int) -> None:
    expected = (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert round_half_up(numerator, denominator) == int(expected)


@given(st.integers(-(10**9), 10**9), st.integers(1, 10**4))
def test_round_half_up_is_symmetric_so_reversals_are_exact(numerator: int, denominator: int) -> None:
    assert round_half_up(-numerator, denominator) == -round_half_up(numerator, denominator)


def test_halves_go_up() -> None:
    assert [round_half_up(n, 2) for n in (1, 3, 5, -1, -3)] == [1, 2, 3, -1, -2]
    assert round_half_up(149, 100) == 1
    assert round_half_up(150, 100) == 2


def test_a_zero_divisor_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        round_half_up(1, 0)


@pytest.mark.parametrize(
    ("minutes", "rule", "expected"),
    [
        (0, MinuteRounding.UP, 0),
        (0.001, MinuteRounding.UP, 5),
        (5, MinuteRounding.UP, 5),
        (5.01, MinuteRounding.UP, 10),
        (7.49, MinuteRounding.NEAREST, 5),
        (7.5, MinuteRounding.NEAREST, 10),
        (9.99, MinuteRounding.DOWN, 5),
        (4.99, MinuteRounding.DOWN, 0),
    ],
)
def test_metered_time_is_billed_in_whole_increments(
    minutes: float, rule: MinuteRounding, expected: int
) -> None:
    ms = round(minutes * MS_PER_MINUTE)
    assert billable_minutes(ms, grace_minutes=0, increment_minutes=5, rule=rule) == expected


def test_grace_minutes_are_taken_off_before_rounding() -> None:
    three = 3 * MS_PER_MINUTE
    assert billable_minutes(three, grace_minutes=3, increment_minutes=1, rule=MinuteRounding.UP) == 0
    assert billable_minutes(three + 1, grace_minutes=3, increment_minutes=1, rule=MinuteRounding.UP) == 1
    assert (
        billable_minutes(47 * MS_PER_MINUTE, grace_minutes=3, increment_minutes=5, rule=MinuteRounding.UP)
        == 45
    )


@given(
    st.integers(0, 10 * 3_600_000),
    st.integers(0, 30),
    st.integers(1, 60),
    st.sampled_from(MinuteRounding),
    st.integers(0, 3_600_000),
)
def test_billable_minutes_are_whole_increments_and_grow_with_time(
    ms: int, grace: int, increment: int, rule: MinuteRounding, more: int
) -> None:
    minutes = billable_minutes(ms, grace_minutes=grace, increment_minutes=increment, rule=rule)
    assert minutes >= 0
    assert minutes % increment == 0
    exact = max(0, ms - grace * MS_PER_MINUTE) / MS_PER_MINUTE
    up = billable_minutes(ms, grace_minutes=grace, increment_minutes=increment, rule=MinuteRounding.UP)
    down = billable_minutes(ms, grace_minutes=grace, increment_minutes=increment, rule=MinuteRounding.DOWN)
    assert down <= exact <= up
    assert up - down in (0, increment)
    assert billable_minutes(ms + more, grace_minutes=grace, increment_minutes=increment, rule=rule) >= minutes


def test_bad_metering_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        billable_minutes(-1, grace_minutes=0, increment_minutes=1, rule=MinuteRounding.UP)
    with pytest.raises(InvalidAmount):
        billable_minutes(1, grace_minutes=0, increment_minutes=0, rule=MinuteRounding.UP)


def test_a_rate_keeps_sub_cent_prices_exact() -> None:
    ninety_cents_an_hour = Rate.per_hour(90)
    assert ninety_cents_an_hour.amount(60) == 90
    assert ninety_cents_an_hour.amount(1) == 2  # 1.5 c, HALF_UP
    assert ninety_cents_an_hour.amount(21) == 32  # 31.5 c: rounded once for the line, not per minute
    assert Rate(5, 2).amount(125) == 313  # 0.025 €/g x 125 g = 3.125 €
    assert Rate.per_minute(10).amount(7) == 70


@given(rates, st.integers(0, 100_000), st.integers(0, 100_000))
def test_a_rate_never_charges_less_for_more(rate: Rate, quantity: int, more: int) -> None:
    assert 0 <= rate.amount(quantity) <= rate.amount(quantity + more)


@given(rates, rates, st.integers(0, 10_000), st.integers(0, 10_000))
def test_amounts_summed_before_rounding(first: Rate, second: Rate, a: int, b: int) -> None:
    exact = Decimal(a * first.cents) / first.per + Decimal(b * second.cents) / second.per
    assert amount_of((a, first), (b, second)) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert amount_of((a, first)) == first.amount(a)
    assert amount_of() == 0


def test_rates_compare_exactly() -> None:
    assert Rate.per_hour(90).exceeds(Rate(1, 1)) is True  # 1.5 c/min > 1 c/min
    assert Rate(3, 2).exceeds(Rate.per_hour(90)) is False  # the same price
    assert Rate(0).is_free


@pytest.mark.parametrize(("cents", "per"), [(-1, 1), (1, 0)])
def test_a_rate_that_cannot_be_right_is_refused(cents: int, per: int) -> None:
    with pytest.raises(InvalidAmount):
        Rate(cents, per)


def test_vat_is_rounded_half_up_per_amount() -> None:
    assert vat_on(1000, 2000) == 200
    assert vat_on(13, 2000) == 3  # 2.6 c
    assert vat_on(5, 1000) == 1  # 0.5 c
    assert vat_on(1234, 550) == 68  # 67.87 c
    assert vat_on(-13, 2000) == -3
    with pytest.raises(InvalidAmount):
        vat_on(100, -1)


@pytest.mark.parametrize(
    ("text", "cents"),
    [("12,50", 1250), ("12.5", 1250), ("12", 1200), (" 1 234,56 € ", 123456), ("-3,00", -300), ("0,07", 7)],
)
def test_amounts_are_read_as_the_treasurer_writes_them(text: str, cents: int) -> None:
    assert parse_cents(text) == cents


@pytest.mark.parametrize("text", ["", "abc", "12,345", "1.2.3", "12 €50", "1e3", "nan"])
def test_an_amount_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_cents(text)
    assert isinstance(caught.value, BillingError)
    assert isinstance(caught.value, ValueError)


def test_rates_are_read_exactly() -> None:
    assert parse_rate("0,90", 60) == Rate(90, 60)
    assert parse_rate("6", 60) == Rate(600, 60)
    assert parse_rate("0.025", 1) == Rate(5, 2)
    assert parse_rate("0,0125", 60).amount(60 * 100) == 125
    with pytest.raises(InvalidAmount):
        parse_rate("-1", 60)


@given(st.integers(0, 10**9), st.integers(1, 120))
def test_a_written_rate_reads_back_to_the_same_price(cents_per_ten_thousand: int, per: int) -> None:
    rate = Rate(cents_per_ten_thousand, 100 * per)
    text = decimal_rate(rate, per)
    assert parse_rate(text, per).amount(per * 10_000) == rate.amount(per * 10_000)


def test_amounts_are_written_in_french_and_english() -> None:
    assert format_cents(123456) == "1\u202f234,56\u00a0€"
    assert format_cents(-5) == "-0,05\u00a0€"
    assert format_cents(123456, "en") == "€1,234.56"
    assert format_rate(Rate.per_hour(90), 60) == "0,90\u00a0€"
    assert format_rate(Rate(5, 2), 1, "en") == "€0.025"
    assert format_rate(Rate(1, 3), 1) == "0,0033\u00a0€"
    assert decimal_rate(Rate.per_hour(600), 60) == "6,00"

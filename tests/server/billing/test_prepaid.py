"""Prepaid members: refused below the minimum balance, unlocked no longer than the balance pays for."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.billing.errors import InvalidAmount
from server.billing.money import FREE, MS_PER_MINUTE
from server.billing.prepaid import PrepaidAllowance, PrepaidRefusal, prepaid_allowance, session_price
from server.billing.prices import PriceVersion
from server.billing.rating import charge_session
from tests.server.billing.sample import OVERLOCKER_PRICE, SEWING_PRICE
from tests.server.billing.strategies import price_versions


def test_a_balance_below_the_minimum_is_refused() -> None:
    allowance = prepaid_allowance(400, SEWING_PRICE, minimum_balance_cents=500)
    assert allowance == PrepaidAllowance(0, PrepaidRefusal.BELOW_MINIMUM)
    assert not allowance.allowed


def test_a_balance_that_pays_for_no_minute_is_refused() -> None:
    assert prepaid_allowance(100, SEWING_PRICE) == PrepaidAllowance(0, PrepaidRefusal.TOO_LOW)


def test_free_idle_time_prices_only_running_minutes() -> None:
    # 4.50 €/h, by the minute: 60 min cost 4.50 €, 59 min 4.43 €
    assert prepaid_allowance(450, OVERLOCKER_PRICE) == PrepaidAllowance(60)
    assert prepaid_allowance(449, OVERLOCKER_PRICE) == PrepaidAllowance(59)


def test_grace_and_plan_minutes_lengthen_the_allowance() -> None:
    no_idle = replace(SEWING_PRICE, idle_rate=FREE, daily_cap_cents=None)
    # 0.50 € fee + 6.00 €/h in 5 min steps after 3 grace minutes, 30 minutes from the plan
    assert prepaid_allowance(1000, no_idle, included_minutes_left=30) == PrepaidAllowance(128)
    assert prepaid_allowance(1000, no_idle) == PrepaidAllowance(98)


def test_billed_idle_time_prices_every_minute_at_the_dearer_rate() -> None:
    # no grace, no plan, one increment in hand: 0.50 € + ceil5(m + 5) x 0.10 € <= 10.00 €
    assert prepaid_allowance(1000, SEWING_PRICE, included_minutes_left=600) == PrepaidAllowance(90)


def test_the_daily_cap_lifts_the_limit() -> None:
    assert prepaid_allowance(2500, SEWING_PRICE) == PrepaidAllowance(None)
    assert prepaid_allowance(600, SEWING_PRICE, charged_today_cents=2000) == PrepaidAllowance(None)
    assert prepaid_allowance(0, replace(OVERLOCKER_PRICE, running_rate=FREE)) == PrepaidAllowance(None)


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        prepaid_allowance(100, SEWING_PRICE, minimum_balance_cents=-1)
    with pytest.raises(InvalidAmount):
        prepaid_allowance(100, SEWING_PRICE, included_minutes_left=-1)


@given(price_versions(), st.integers(0, 20_000), st.integers(0, 600), st.data())
def test_the_machine_unlocks_no_longer_than_the_balance_pays_for(
    version: PriceVersion, balance: int, included: int, data: st.DataObject
) -> None:
    allowance = prepaid_allowance(balance, version, included_minutes_left=included)
    if allowance.minutes is None:
        assert allowance.allowed
        return
    minutes = allowance.minutes
    if not allowance.allowed:
        assert minutes == 0
        return
    cap = version.daily_cap_cents
    assert min(session_price(version, minutes, included), cap if cap is not None else 10**12) <= balance
    assert min(session_price(version, minutes + 1, included), cap if cap is not None else 10**12) > balance
    # Any mix of running and idle time within the allowance, billed as rating bills it, is paid for.
    running = data.draw(st.integers(0, minutes * MS_PER_MINUTE))
    charge = charge_session(version, running, minutes * MS_PER_MINUTE - running, included)
    assert min(charge.total_cents, cap if cap is not None else 10**12) <= balance

"""Prepaid members: how long the machine may stay unlocked for the balance they have.

The decision at the machine (in :mod:`server.access`, later) asks
:func:`prepaid_allowance` and unlocks for no longer than the minutes it gives:

- Below ``minimum_balance_cents`` the member is refused (``below_minimum``).
- Otherwise the allowance is the most minutes of unlocked time whose price, as the
  rating engine would bill them in one session, the balance pays for in full. The
  balance may be spent down to zero.
- When idle time is free, only running time costs money, so the minutes are priced as
  running minutes, with the grace and the plan's included minutes left.
- When idle time is billed too, every unlocked minute is priced at the dearer of the
  two rates, without grace or plan minutes, with one increment in hand for rounding:
  the member may spend the session idle or running in any mix.
- The daily cap bounds what a day can cost. When a whole day (24 h) of use is paid for
  — what is left of the cap is within the balance, or the machine costs nothing — the
  balance is no limit and ``minutes`` is None.

The gateway never cuts a machine that is running, so a session can outrun its
allowance: the ledger then shows a negative balance, settled like any other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from server.billing.errors import InvalidAmount
from server.billing.money import FREE, MS_PER_MINUTE
from server.billing.prices import PriceVersion
from server.billing.rating import charge_session

DAY_MINUTES = 24 * 60


class PrepaidRefusal(StrEnum):
    BELOW_MINIMUM = "below_minimum"
    TOO_LOW = "balance_too_low"


@dataclass(frozen=True, slots=True)
class PrepaidAllowance:
    """``minutes`` of unlocked time the balance pays for; None when the balance is no limit."""

    minutes: int | None
    refusal: PrepaidRefusal | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def session_price(version: PriceVersion, unlocked_minutes: int, included_left: int = 0) -> int:
    """The most a session of ``unlocked_minutes`` can cost at ``version``, before the daily cap."""
    if version.idle_rate.is_free:
        charge = charge_session(version, unlocked_minutes * MS_PER_MINUTE, 0, included_left)
        return charge.total_cents
    dearer = version.idle_rate if version.idle_rate.exceeds(version.running_rate) else version.running_rate
    worst = dataclasses.replace(version, running_rate=dearer, idle_rate=FREE, grace_minutes=0)
    minutes = unlocked_minutes + version.increment_minutes
    return charge_session(worst, minutes * MS_PER_MINUTE, 0).total_cents


def prepaid_allowance(
    balance_cents: int,
    version: PriceVersion,
    *,
    minimum_balance_cents: int = 0,
    charged_today_cents: int = 0,
    included_minutes_left: int = 0,
) -> PrepaidAllowance:
    """How long a prepaid member with ``balance_cents`` may use a machine priced by ``version``.

    ``charged_today_cents`` is what the member already owes for this machine today (for
    the daily cap); ``included_minutes_left`` what is left of their plan for its class.
    """
    if minimum_balance_cents < 0 or charged_today_cents < 0 or included_minutes_left < 0:
        raise InvalidAmount("the minimum balance, today's charges and the plan minutes left are >= 0")
    if balance_cents < minimum_balance_cents:
        return PrepaidAllowance(0, PrepaidRefusal.BELOW_MINIMUM)
    cap_left = None
    if version.daily_cap_cents is not None:
        cap_left = max(0, version.daily_cap_cents - charged_today_cents)

    def cost(minutes: int) -> int:
        price = session_price(version, minutes, included_minutes_left)
        return price if cap_left is None else min(price, cap_left)

    if cost(DAY_MINUTES) <= balance_cents:
        return PrepaidAllowance(None)
    low, high = 0, DAY_MINUTES  # cost(high) > balance; find the most minutes still paid for
    if cost(low) > balance_cents:
        return PrepaidAllowance(0, PrepaidRefusal.TOO_LOW)
    while high - low > 1:
        middle = (low + high) // 2
        if cost(middle) <= balance_cents:
            low = middle
        else:
            high = middle
    if low == 0:
        return PrepaidAllowance(0, PrepaidRefusal.TOO_LOW)
    return PrepaidAllowance(low)

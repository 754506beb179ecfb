"""The rating engine: metered sessions and sales in, invoice lines out. Pure and deterministic.

For each session, in the order they started (ties by session id):

1. Its **price version** is the one of the payer's price list valid on the day it
   started (:class:`~server.billing.prices.PriceBook`).
2. **Running minutes**: the grace minutes are taken off its running time, and the rest
   is rounded to whole increments by the version's rule. **Idle minutes**: its idle
   time rounded the same way, without grace (billed only if the idle rate is not free).
3. A session with no running minute left after the grace and no idle minute to pay is
   a **free try**: it costs nothing at all, not even the session fee.
4. **Plan**: the minutes included in the member's plan for the machine's class are
   taken first, in session order within the month; what they cover costs nothing.
5. **Session fee**: every session that is not a free try pays it, plan or not.
6. **Minimum charge**: a session with metered time to pay (running minutes not covered
   by the plan, or idle minutes, at a non-zero rate) pays at least the minimum: its own
   fee plus metered amount (rounded HALF_UP to the cent) is topped up to it.

Then per member, machine and day, one line per kind: running minutes, included
minutes, idle minutes, fees, minimum top-ups — each amount rounded once, HALF_UP —
and, when they exceed the **daily cap** (less what was already invoiced for that day),
a negative line bringing the day down to the cap. Consumables are lines of their own,
per member, machine, day and product, and are not capped.

A session (or sale) from a day before ``billing_period`` is a late one for a closed
period: its lines carry ``adjustment_for`` and go on the open period's invoice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from operator import itemgetter
from typing import Any, NamedTuple

from server.billing.charges import SessionCharge, Terms, charge_session
from server.billing.errors import InvalidAmount, InvalidPeriod
from server.billing.lines import ChargeLine, LineKind, MachineRef, MemberRef, Unit
from server.billing.money import Rate
from server.billing.periods import WORKSHOP_TZ, Period, workshop_day
from server.billing.prices import Consumable, Plan, PriceBook

__all__ = [  # SessionCharge and charge_session are rating's, worked out in charges
    "ConsumableSale", "DayKey", "MeteredSession", "PlanKey", "RatedSession", "Rating", "RatingCache", "SessionCharge",
    "charge_session", "plan_fee_line", "rate_usage",
]  # fmt: skip

DayKey = tuple[int, str, date]
"""(member id, machine slug, day): what a daily cap is counted on."""
PlanKey = tuple[int, Period, str]
"""(member id, month, machine class): what a plan's included minutes are counted on."""

# The records below are named tuples, not dataclasses: a month close makes one or two of
# each per session, a million sessions a month at scale, and a tuple is made several
# times faster. The rating engine makes its own with ``_make`` (no checks: its values
# hold by construction); anyone else gets the checks.


class _MeteredSessionFields(NamedTuple):
    session_id: str
    member: MemberRef
    machine: MachineRef
    started_at: datetime
    running_ms: int
    idle_ms: int


class MeteredSession(_MeteredSessionFields):
    """A usage session as the gateway metered it (from ``UsageSession``)."""

    __slots__ = ()

    def __new__(  # noqa: PLR0917 - positional, as the tuple it is
        cls,
        session_id: str,
        member: MemberRef,
        machine: MachineRef,
        started_at: datetime,
        running_ms: int,
        idle_ms: int,
    ) -> MeteredSession:
        _check_durations(session_id, running_ms, idle_ms)
        return super().__new__(cls, session_id, member, machine, started_at, running_ms, idle_ms)


def _check_durations(session_id: str, running_ms: int, idle_ms: int) -> None:
    if running_ms < 0 or idle_ms < 0:
        raise InvalidAmount(f"session {session_id!r} has a negative duration")


@dataclass(frozen=True, slots=True)
class ConsumableSale:
    sale_id: str
    member: MemberRef
    sold_at: datetime
    consumable: Consumable
    quantity: int
    machine: MachineRef | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise InvalidAmount(f"sale {self.sale_id!r}: the quantity sold is a positive whole number")


_new = tuple.__new__
"""Makes a record of this module from a tuple of its values, without its checks."""
_DayKey = tuple[int, date, str]
"""(member id, day, machine slug): a :data:`DayKey` in the order the lines go on the invoice."""


class RatingCache:
    """What rating works out again and again, kept for every payer rated at one price book.

    The version of a machine on a day, a moment's day in the workshop, a day's month: a
    close rates thousands of payers at a few price lists over one month, so it hands
    :func:`rate_usage` one of these per list, in place of the bare book, and each of
    these is worked out once rather than once per payer.
    """

    def __init__(self, prices: PriceBook) -> None:
        self.prices = prices
        self.terms: dict[tuple[str, str, date], Terms] = {}
        self._versions: dict[str, Terms] = {}
        self.days: dict[tzinfo, dict[float, date]] = defaultdict(dict)
        self.months: dict[Period | None, dict[date, tuple[Period, Period | None, int]]] = defaultdict(dict)
        self._periods: dict[int, Period] = {}

    def terms_for(self, machine: str, machine_class: str, day: date) -> Terms:
        version = self.prices.version_for(machine, machine_class, day)
        terms = self._versions.get(version.id)
        if terms is None or terms.version is not version:
            terms = self._versions[version.id] = Terms(version)
        self.terms[(machine, machine_class, day)] = terms
        return terms

    def month_of(
        self, day: date, billing_period: Period | None, what: str
    ) -> tuple[Period, Period | None, int]:
        """``day``'s month, the closed month it is an adjustment for (if any), and the month's
        number (a cheaper key than the month itself); ``what`` names the session in a refusal."""
        number = day.year * 12 + day.month
        month = self._periods.get(number)
        if month is None:
            month = self._periods[number] = Period.of(day)
        found = (month, _adjustment(day, billing_period, what), number)
        self.months[billing_period][day] = found
        return found

    def day_of(self, moment: datetime, tz: tzinfo) -> date:
        """:func:`~server.billing.periods.workshop_day`, kept per quarter of an hour it holds for.

        Time zones change their offset on the quarter hour at least, so a whole quarter
        of an hour usually falls on one day: the day is kept for it when its first and
        last microseconds fall on that day at one same offset.
        """
        day = workshop_day(moment, tz)
        quarter = moment.timestamp() // _QUARTER
        first = datetime.fromtimestamp(quarter * _QUARTER, UTC)
        last = first + _LAST_MICROSECOND
        if (
            workshop_day(first, tz) == day == workshop_day(last, tz)
            and first.astimezone(tz).utcoffset() == last.astimezone(tz).utcoffset()
        ):
            self.days[tz][quarter] = day
        return day


_QUARTER = 900  # seconds
_LAST_MICROSECOND = timedelta(seconds=_QUARTER, microseconds=-1)


class RatedSession(NamedTuple):
    """How one session was rated: kept beside the invoice to explain every line."""

    session_id: str
    member_id: int
    machine: str
    day: date
    price_version: str
    charge: SessionCharge
    adjustment_for: Period | None


@dataclass(frozen=True)
class Rating:
    sessions: tuple[RatedSession, ...]
    lines: tuple[ChargeLine, ...]

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)


def _adjustment(day: date, billing_period: Period | None, what: str) -> Period | None:
    if billing_period is None:
        return None
    period = Period.of(day)
    if period > billing_period:
        raise InvalidPeriod(f"{what} is from {period}, after the period billed ({billing_period})")
    return period if period < billing_period else None


_START_ORDER = itemgetter(3, 0)  # (started_at, session_id) of a MeteredSession
_UNKNOWN: Any = object()
_SESSION_ID = itemgetter(0)


def rate_usage(
    sessions: Iterable[MeteredSession],
    prices: PriceBook | RatingCache,
    *,
    plans: Mapping[tuple[int, Period], Plan] | None = None,
    plan_minutes_used: Mapping[PlanKey, int] | None = None,
    charged_before: Mapping[DayKey, int] | None = None,
    sales: Iterable[ConsumableSale] = (),
    billing_period: Period | None = None,
    tz: tzinfo = WORKSHOP_TZ,
) -> Rating:
    """Rate ``sessions`` (and ``sales``) at ``prices``, the price list of the one payer they bill.

    ``plans`` gives each member's plan for a month; ``plan_minutes_used`` the included
    minutes already taken on earlier invoices, and ``charged_before`` the capped amounts
    already invoiced per member, machine and day (both matter for late sessions). The
    result depends only on the arguments, not on the order sessions are given in.
    ``prices`` may be a :class:`RatingCache` of the book, to rate many payers faster.
    """
    cache = prices if isinstance(prices, RatingCache) else RatingCache(prices)
    plans = plans or {}
    used: dict[PlanKey, int] = defaultdict(int, plan_minutes_used or {})
    ordered = sorted(sessions, key=_START_ORDER)
    if len(set(map(_SESSION_ID, ordered))) != len(ordered):
        raise InvalidAmount("a session is rated once: the same session id appears twice")

    # Per member, day and machine: the machine, the adjustment, the plan's name, the charges.
    days: dict[_DayKey, list[Any]] = {}
    rated: list[RatedSession] = []
    day_of, months, versions = cache.days[tz], cache.months[billing_period], cache.terms
    member_plans: dict[tuple[int, int], Any] = {}  # by member and month number
    for session_id, member, machine, started_at, running_ms, idle_ms in ordered:
        if running_ms < 0 or idle_ms < 0 or started_at.tzinfo is None:
            _check_durations(session_id, running_ms, idle_ms)
            workshop_day(started_at, tz)  # refuses a naive moment
        try:
            quarter = started_at.timestamp() // _QUARTER
        except TypeError:  # a time zone without an offset: naive after all
            workshop_day(started_at, tz)
            raise
        day = day_of.get(quarter) or cache.day_of(started_at, tz)
        known = months.get(day)
        if known is None:
            known = months[day] = cache.month_of(day, billing_period, f"session {session_id!r}")
        month, adjustment, month_number = known
        slug, machine_class = machine.slug, machine.machine_class
        terms = versions.get((slug, machine_class, day)) or cache.terms_for(slug, machine_class, day)
        member_id = member.id
        left = 0
        plan: Plan | None = None
        plan_key: Any = None
        if plans:
            plan = member_plans.get((member_id, month_number), _UNKNOWN)
            if plan is _UNKNOWN:
                plan = member_plans[(member_id, month_number)] = plans.get((member_id, month))
            if plan is not None:
                plan_key = (member_id, month, machine_class)
                left = plan.included_minutes.get(machine_class, 0) - used[plan_key]
        charge = terms.charge(running_ms, idle_ms, left)
        if charge.included_minutes:
            used[plan_key] += charge.included_minutes
        key = (member_id, day, slug)
        group = days.get(key)
        if group is None:
            days[key] = [terms, member, machine, adjustment, plan.name if plan is not None else "", charge]
        else:
            group.append(charge)
        rated.append(
            _new(RatedSession, (session_id, member_id, slug, day, terms.version_id, charge, adjustment))
        )
    return Rating(tuple(rated), _lines_of(days, charged_before or {}, sales, billing_period, tz))


def _lines_of(
    days: dict[_DayKey, list[Any]],
    before: Mapping[DayKey, int],
    sales: Iterable[ConsumableSale],
    billing_period: Period | None,
    tz: tzinfo,
) -> tuple[ChargeLine, ...]:
    """Every line, in :meth:`ChargeLine.sort_key` order: the days' in the order of their keys."""
    lines: list[ChargeLine] = []
    for key in sorted(days):
        group = days[key]
        charged_before = before.get((key[0], key[2], key[1]), 0) if before else 0
        lines.extend(group[0].lines(group, key[1], charged_before))
    sale_lines = _sale_lines(sales, billing_period, tz)
    if sale_lines:
        lines.extend(sale_lines)
        lines.sort(key=ChargeLine.sort_key)
    return tuple(lines)


def _sale_lines(
    sales: Iterable[ConsumableSale], billing_period: Period | None, tz: tzinfo
) -> list[ChargeLine]:
    grouped: dict[tuple[int, str, date, Consumable], list[ConsumableSale]] = defaultdict(list)
    for sale in sorted(sales, key=lambda s: (s.sold_at, s.sale_id)):
        day = workshop_day(sale.sold_at, tz)
        slug = sale.machine.slug if sale.machine else ""
        grouped[(sale.member.id, slug, day, sale.consumable)].append(sale)
    lines = []
    for (_, _, day, consumable), group in grouped.items():
        quantity = sum(sale.quantity for sale in group)
        lines.append(
            ChargeLine(
                kind=LineKind.CONSUMABLE,
                member=group[0].member,
                quantity=quantity,
                unit=consumable.unit,
                unit_price=consumable.unit_price,
                amount_cents=consumable.unit_price.amount(quantity),
                vat_rate_bp=consumable.vat_rate_bp,
                machine=group[0].machine,
                day=day,
                item=consumable.name,
                adjustment_for=_adjustment(day, billing_period, f"sale {group[0].sale_id!r}"),
            )
        )
    return lines


def plan_fee_line(member: MemberRef, plan: Plan, period: Period) -> ChargeLine:
    """The monthly fee of ``member``'s ``plan`` for ``period``."""
    return ChargeLine(
        kind=LineKind.PLAN_FEE,
        member=member,
        quantity=1,
        unit=Unit.MONTH,
        unit_price=Rate(plan.monthly_fee_cents),
        amount_cents=plan.monthly_fee_cents,
        vat_rate_bp=plan.vat_rate_bp,
        day=period.first_day,
        item=plan.name,
    )

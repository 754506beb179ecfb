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
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from server.billing.errors import InvalidAmount, InvalidPeriod
from server.billing.lines import ChargeLine, LineKind, MachineRef, MemberRef, Unit
from server.billing.money import Rate, amount_of, billable_minutes
from server.billing.periods import WORKSHOP_TZ, Period, workshop_day
from server.billing.prices import Consumable, Plan, PriceBook, PriceVersion

DayKey = tuple[int, str, date]
"""(member id, machine slug, day): what a daily cap is counted on."""
PlanKey = tuple[int, Period, str]
"""(member id, month, machine class): what a plan's included minutes are counted on."""


@dataclass(frozen=True, slots=True)
class MeteredSession:
    """A usage session as the gateway metered it (from ``UsageSession``)."""

    session_id: str
    member: MemberRef
    machine: MachineRef
    started_at: datetime
    running_ms: int
    idle_ms: int

    def __post_init__(self) -> None:
        if self.running_ms < 0 or self.idle_ms < 0:
            raise InvalidAmount(f"session {self.session_id!r} has a negative duration")


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


@dataclass(frozen=True, slots=True)
class SessionCharge:
    """What one session comes to on its own, before the daily cap."""

    free_try: bool
    running_minutes: int
    """Billable running minutes: after the grace, rounded to the increment."""
    included_minutes: int
    """Of those, the minutes the plan covered."""
    idle_minutes: int
    """Billable idle minutes (0 when the idle rate is free)."""
    fee_cents: int
    metered_cents: int
    """Running minutes not covered plus idle minutes at their rates, HALF_UP."""
    minimum_topup_cents: int

    @property
    def charged_minutes(self) -> int:
        return self.running_minutes - self.included_minutes

    @property
    def total_cents(self) -> int:
        return self.fee_cents + self.metered_cents + self.minimum_topup_cents


def charge_session(
    version: PriceVersion, running_ms: int, idle_ms: int, included_left: int = 0
) -> SessionCharge:
    """Steps 2 to 6 of the rules above for one session, with ``included_left`` plan minutes left."""
    running = billable_minutes(
        running_ms,
        grace_minutes=version.grace_minutes,
        increment_minutes=version.increment_minutes,
        rule=version.rounding,
    )
    idle = 0
    if not version.idle_rate.is_free:
        idle = billable_minutes(
            idle_ms, grace_minutes=0, increment_minutes=version.increment_minutes, rule=version.rounding
        )
    if running == 0 and idle == 0:
        return SessionCharge(True, 0, 0, 0, 0, 0, 0)
    included = min(max(0, included_left), running)
    charged = running - included
    metered = amount_of((charged, version.running_rate), (idle, version.idle_rate))
    has_metered = (charged > 0 and not version.running_rate.is_free) or idle > 0
    fee = version.session_fee_cents
    topup = max(0, version.minimum_charge_cents - fee - metered) if has_metered else 0
    return SessionCharge(False, running, included, idle, fee, metered, topup)


@dataclass(frozen=True, slots=True)
class RatedSession:
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


@dataclass
class _Day:
    """The sessions of one member on one machine on one day, as they are rated."""

    member: MemberRef
    machine: MachineRef
    day: date
    version: PriceVersion
    adjustment_for: Period | None
    plan_name: str = ""
    charges: list[SessionCharge] = field(default_factory=list)

    def lines(self, charged_before: int) -> list[ChargeLine]:
        charges = self.charges
        version = self.version

        def line(kind: LineKind, quantity: int, unit: Unit, price: Rate | None, amount: int) -> ChargeLine:
            return ChargeLine(
                kind=kind,
                member=self.member,
                quantity=quantity,
                unit=unit,
                unit_price=price,
                amount_cents=amount,
                vat_rate_bp=version.vat_rate_bp,
                machine=self.machine,
                day=self.day,
                item=self.plan_name if kind is LineKind.INCLUDED else "",
                price_version=version.id,
                adjustment_for=self.adjustment_for,
            )

        charged = included = idle = fees = 0
        topped: list[int] = []
        for charge in charges:
            charged += charge.running_minutes - charge.included_minutes
            included += charge.included_minutes
            idle += charge.idle_minutes
            fees += 1 if charge.fee_cents else 0
            if charge.minimum_topup_cents:
                topped.append(charge.minimum_topup_cents)
        lines: list[ChargeLine] = []
        if charged:
            rate = version.running_rate
            lines.append(line(LineKind.RUNNING, charged, Unit.MINUTE, rate, rate.amount(charged)))
        if included:
            lines.append(line(LineKind.INCLUDED, included, Unit.MINUTE, version.running_rate, 0))
        if idle:
            rate = version.idle_rate
            lines.append(line(LineKind.IDLE, idle, Unit.MINUTE, rate, rate.amount(idle)))
        if fees:
            fee = version.session_fee_cents
            lines.append(line(LineKind.SESSION_FEE, fees, Unit.SESSION, Rate(fee), fees * fee))
        if topped:
            lines.append(line(LineKind.MINIMUM, len(topped), Unit.SESSION, None, sum(topped)))
        cap = version.daily_cap_cents
        subtotal = sum(x.amount_cents for x in lines)
        if cap is not None and subtotal > max(0, cap - charged_before):
            reduction = max(0, cap - charged_before) - subtotal
            lines.append(line(LineKind.DAILY_CAP, 1, Unit.DAY, Rate(cap), reduction))
        return lines


def _adjustment(day: date, billing_period: Period | None, what: str) -> Period | None:
    if billing_period is None:
        return None
    period = Period.of(day)
    if period > billing_period:
        raise InvalidPeriod(f"{what} is from {period}, after the period billed ({billing_period})")
    return period if period < billing_period else None


def rate_usage(
    sessions: Iterable[MeteredSession],
    prices: PriceBook,
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
    """
    plans = plans or {}
    used: dict[PlanKey, int] = defaultdict(int, plan_minutes_used or {})
    ordered = sorted(sessions, key=lambda s: (s.started_at, s.session_id))
    if len({s.session_id for s in ordered}) != len(ordered):
        raise InvalidAmount("a session is rated once: the same session id appears twice")

    days: dict[DayKey, _Day] = {}
    rated: list[RatedSession] = []
    # A month holds many sessions and few distinct days and machines: look those up once.
    months: dict[date, tuple[Period, Period | None]] = {}
    versions: dict[tuple[str, str, date], PriceVersion] = {}
    for session in ordered:
        day = workshop_day(session.started_at, tz)
        if day not in months:
            months[day] = (
                Period.of(day),
                _adjustment(day, billing_period, f"session {session.session_id!r}"),
            )
        month, adjustment = months[day]
        machine = session.machine
        version_key = (machine.slug, machine.machine_class, day)
        version = versions.get(version_key)
        if version is None:
            version = versions[version_key] = prices.version_for(*version_key)
        plan = plans.get((session.member.id, month))
        plan_key = (session.member.id, month, machine.machine_class)
        left = plan.included_minutes.get(machine.machine_class, 0) - used[plan_key] if plan else 0
        charge = charge_session(version, session.running_ms, session.idle_ms, left)
        if charge.included_minutes:
            used[plan_key] += charge.included_minutes
        key = (session.member.id, machine.slug, day)
        group = days.get(key)
        if group is None:
            group = days[key] = _Day(
                session.member, machine, day, version, adjustment, plan.name if plan else ""
            )
        group.charges.append(charge)
        rated.append(
            RatedSession(
                session.session_id, session.member.id, machine.slug, day, version.id, charge, adjustment
            )
        )

    before = charged_before or {}
    lines = [line for key, group in days.items() for line in group.lines(before.get(key, 0))]
    lines.extend(_sale_lines(sales, billing_period, tz))
    lines.sort(key=ChargeLine.sort_key)
    return Rating(tuple(rated), tuple(lines))


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

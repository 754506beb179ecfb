"""What one session comes to, and one member's day on one machine, at one price version.

Steps 2 to 6 of the rules in :mod:`server.billing.rating` (billable minutes, free try,
plan minutes, session fee, minimum charge), and the day's lines with the daily cap, as
:class:`Terms` works them out for one version. A close rates a million sessions at a
few versions, so the terms are worked out once per version, and what a session or a day
comes to once per distinct case: the money rules (:mod:`server.billing.money`) run once
per case, not once per session.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple

from server.billing.lines import ChargeLine, LineKind, MemberRef, Unit
from server.billing.money import Rate, amount_of, billable_minutes
from server.billing.prices import PriceVersion


class SessionCharge(NamedTuple):
    """What one session comes to on its own, before the daily cap."""

    free_try: bool
    running_minutes: int  # billable running minutes: after the grace, rounded to the increment
    included_minutes: int  # of those, the minutes the plan covered
    idle_minutes: int  # billable idle minutes (0 when the idle rate is free)
    fee_cents: int
    metered_cents: int  # running minutes not covered plus idle minutes at their rates, HALF_UP
    minimum_topup_cents: int

    @property
    def charged_minutes(self) -> int:
        return self.running_minutes - self.included_minutes

    @property
    def total_cents(self) -> int:
        return self.fee_cents + self.metered_cents + self.minimum_topup_cents


_FREE_TRY = SessionCharge(True, 0, 0, 0, 0, 0, 0)


class Terms:
    """A price version's terms as rating uses them, worked out once per version, not per session.

    What a session comes to depends only on its billable minutes (and the plan minutes
    it may use), and what a day's lines come to only on its totals: both are kept, so
    the money rules run once per distinct case, not once per session or day.
    """

    __slots__ = (
        "_charges", "_lines", "cap_rate", "fee", "fee_rate", "grace", "idle_billed", "idle_rate", "increment",
        "minimum", "rounding", "running_paid", "running_rate", "version", "version_id",
    )  # fmt: skip

    def __init__(self, version: PriceVersion) -> None:
        self.version = version
        self.version_id = version.id
        self.grace = version.grace_minutes
        self.increment = version.increment_minutes
        self.rounding = version.rounding
        self.running_rate = version.running_rate
        self.running_paid = not version.running_rate.is_free
        self.idle_rate = version.idle_rate
        self.idle_billed = not version.idle_rate.is_free
        self.fee = version.session_fee_cents
        self.fee_rate = Rate(version.session_fee_cents)
        self.minimum = version.minimum_charge_cents
        cap = version.daily_cap_cents
        self.cap_rate = Rate(cap) if cap is not None else None
        self._charges: dict[tuple[int, int, int], SessionCharge] = {}
        self._lines: dict[tuple[Any, ...], tuple[_LinePart, ...]] = {}

    def charge(self, running_ms: int, idle_ms: int, included_left: int) -> SessionCharge:
        """Steps 2 to 6 of the rules above for one session, with ``included_left`` plan minutes left."""
        running = billable_minutes(
            running_ms, grace_minutes=self.grace, increment_minutes=self.increment, rule=self.rounding
        )
        idle = 0
        if self.idle_billed:
            idle = billable_minutes(
                idle_ms, grace_minutes=0, increment_minutes=self.increment, rule=self.rounding
            )
        included = min(included_left, running) if included_left > 0 else 0
        found = self._charges.get((running, idle, included))
        if found is None:
            found = self._charges[(running, idle, included)] = self._charge(running, idle, included)
        return found

    def _charge(self, running: int, idle: int, included: int) -> SessionCharge:
        if running == 0 and idle == 0:
            return _FREE_TRY
        charged = running - included
        metered = amount_of((charged, self.running_rate), (idle, self.idle_rate))
        has_metered = (charged > 0 and self.running_paid) or idle > 0
        fee = self.fee
        topup = max(0, self.minimum - fee - metered) if has_metered else 0
        return SessionCharge(False, running, included, idle, fee, metered, topup)

    def lines(self, group: list[Any], day: date, charged_before: int) -> list[ChargeLine]:
        """The lines of one member's sessions on one machine on one day, in ``KIND_ORDER``.

        ``group`` is what :func:`~server.billing.rating.rate_usage` keeps per member, day
        and machine: these terms, the member, the machine, the adjustment, the plan's name,
        then each session's :class:`SessionCharge`.
        """
        member, machine, adjustment, plan_name = group[1], group[2], group[3], group[4]
        if len(group) == 6:  # one session: the usual case
            charge = group[5]
            totals = (
                charge.running_minutes - charge.included_minutes, charge.included_minutes, charge.idle_minutes,
                1 if charge.fee_cents else 0, 1 if charge.minimum_topup_cents else 0, charge.minimum_topup_cents,
                plan_name, charged_before,
            )  # fmt: skip
        else:
            charged = included = idle = fees = topped = topups = 0
            for position in range(5, len(group)):
                charge = group[position]
                charged += charge.running_minutes - charge.included_minutes
                included += charge.included_minutes
                idle += charge.idle_minutes
                if charge.fee_cents:
                    fees += 1
                if charge.minimum_topup_cents:
                    topped += 1
                    topups += charge.minimum_topup_cents
            totals = (charged, included, idle, fees, topped, topups, plan_name, charged_before)
        parts = self._lines.get(totals)
        if parts is None:
            parts = self._lines[totals] = self._line_parts(*totals)
        vat, version_id = self.version.vat_rate_bp, self.version.id
        return [
            _new(ChargeLine, (kind, member, quantity, unit, price, amount, vat, machine, day, item, version_id,
                              adjustment))
            for kind, quantity, unit, price, amount, item in parts
        ]  # fmt: skip

    def _line_parts(  # noqa: PLR0917 - a day's totals, as lines() keeps them
        self,
        charged: int,
        included: int,
        idle: int,
        fees: int,
        topped: int,
        topups: int,
        plan_name: str,
        charged_before: int,
    ) -> tuple[_LinePart, ...]:
        """Kind, quantity, unit, unit price, amount and item of each line of a day with these totals."""
        parts: list[_LinePart] = []
        if charged:
            parts.append(
                (
                    LineKind.RUNNING,
                    charged,
                    Unit.MINUTE,
                    self.running_rate,
                    self.running_rate.amount(charged),
                    "",
                )
            )
        if included:
            parts.append((LineKind.INCLUDED, included, Unit.MINUTE, self.running_rate, 0, plan_name))
        if idle:
            parts.append((LineKind.IDLE, idle, Unit.MINUTE, self.idle_rate, self.idle_rate.amount(idle), ""))
        if fees:
            parts.append((LineKind.SESSION_FEE, fees, Unit.SESSION, self.fee_rate, fees * self.fee, ""))
        if topped:
            parts.append((LineKind.MINIMUM, topped, Unit.SESSION, None, topups, ""))
        cap = self.version.daily_cap_cents
        subtotal = sum(part[4] for part in parts)
        if cap is not None and subtotal > max(0, cap - charged_before):
            reduction = max(0, cap - charged_before) - subtotal
            parts.append((LineKind.DAILY_CAP, 1, Unit.DAY, self.cap_rate, reduction, ""))
        for part in parts:  # what ChargeLine checks, once per case
            ChargeLine(part[0], _NOBODY, part[1], part[2], part[3], part[4], 0)
        return tuple(parts)


_LinePart = tuple[LineKind, int, Unit, Rate | None, int, str]
_NOBODY = MemberRef(0, "")


def charge_session(
    version: PriceVersion, running_ms: int, idle_ms: int, included_left: int = 0
) -> SessionCharge:
    """Steps 2 to 6 of the rules above for one session, with ``included_left`` plan minutes left."""
    return Terms(version).charge(running_ms, idle_ms, included_left)


_new = tuple.__new__
"""Makes a record from a tuple of its values, without its checks (the values hold by construction)."""

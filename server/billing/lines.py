"""What a payer is charged for, line by line, before an invoice gives the lines a number and VAT.

Usage lines are **one per member, machine, day and kind**: the running minutes at the
running rate, the minutes included in a plan, the idle (setup) minutes, the session
fees, the top-ups to the minimum charge, and the reduction to the daily cap. Each line's
amount is rounded once (see :mod:`server.billing.money`). Every amount is excluding VAT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import NamedTuple

from server.billing.errors import InvalidAmount
from server.billing.money import Rate
from server.billing.periods import Period


class LineKind(StrEnum):
    RUNNING = "running"  # running minutes at the running rate
    INCLUDED = "included"  # running minutes taken from a plan's included minutes: amount 0
    IDLE = "idle"  # unlocked but not running (setup) minutes at the idle rate
    SESSION_FEE = "session_fee"  # the fee of each session that is not a free try
    MINIMUM = "minimum"  # what brings each session up to the minimum charge
    DAILY_CAP = "daily_cap"  # negative: what the day's lines exceed the daily cap by
    PLAN_FEE = "plan_fee"  # a plan's monthly fee
    CONSUMABLE = "consumable"  # thread, filament... sold at the machine


KIND_ORDER = {kind: position for position, kind in enumerate(LineKind)}
"""The order lines of one member, machine and day are listed in."""

CAPPED_KINDS = frozenset(
    {LineKind.RUNNING, LineKind.IDLE, LineKind.SESSION_FEE, LineKind.MINIMUM, LineKind.DAILY_CAP}
)
"""The kinds the daily cap covers: machine use. Consumables and plan fees are not capped."""


class Unit(StrEnum):
    MINUTE = "min"
    SESSION = "session"
    DAY = "day"
    MONTH = "month"
    GRAM = "g"
    METRE = "m"
    PIECE = "piece"


@dataclass(frozen=True, slots=True)
class MemberRef:
    """Who used the machine, as the invoice names them."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class MachineRef:
    slug: str
    name: str
    machine_class: str


class _ChargeLineFields(NamedTuple):
    kind: LineKind
    member: MemberRef
    quantity: int
    unit: Unit
    unit_price: Rate | None
    amount_cents: int
    vat_rate_bp: int
    machine: MachineRef | None = None
    day: date | None = None
    item: str = ""  # the plan's name for a plan fee, the product for a consumable
    price_version: str = ""
    adjustment_for: Period | None = None


class ChargeLine(_ChargeLineFields):
    """One line to invoice. ``quantity`` is in ``unit``; ``amount_cents`` excludes VAT.

    ``unit_price`` is the rate the amount was computed at, shown on the invoice (None for
    lines that are not a quantity times a price: minimum top-ups and cap reductions).
    ``adjustment_for`` names the closed period a late session belonged to.

    A named tuple rather than a dataclass: a month close makes about two of these per
    session (millions), and a tuple is made several times faster. Making one checks its
    amounts; the rating engine, whose amounts hold by construction, makes them with
    ``ChargeLine._make`` (no checks).
    """

    __slots__ = ()

    def __new__(  # noqa: PLR0917 - positional, as the tuple it is
        cls,
        kind: LineKind,
        member: MemberRef,
        quantity: int,
        unit: Unit,
        unit_price: Rate | None,
        amount_cents: int,
        vat_rate_bp: int,
        machine: MachineRef | None = None,
        day: date | None = None,
        item: str = "",
        price_version: str = "",
        adjustment_for: Period | None = None,
    ) -> ChargeLine:
        if not isinstance(amount_cents, int) or not isinstance(quantity, int):
            raise InvalidAmount("a line's quantity and amount are integers")
        if kind is LineKind.DAILY_CAP:
            if amount_cents > 0:
                raise InvalidAmount("a daily cap line only ever reduces the amount")
        elif amount_cents < 0:
            raise InvalidAmount(f"a {kind} line cannot be negative ({amount_cents} cents)")
        return super().__new__(
            cls, kind, member, quantity, unit, unit_price, amount_cents, vat_rate_bp, machine, day, item,
            price_version, adjustment_for,
        )  # fmt: skip

    def sort_key(self) -> tuple[int, str, str, str, int, str]:
        return (
            self.member.id,
            self.day.isoformat() if self.day else "",
            self.machine.slug if self.machine else "",
            str(self.adjustment_for or ""),
            KIND_ORDER[self.kind],
            self.item,
        )

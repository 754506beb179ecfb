"""Money: integer cents, exact rates, and every rounding rule billing uses — here and nowhere else.

- An **amount** is an ``int`` of euro cents. Never a float, never a Decimal in storage.
- A **rate** (:class:`Rate`) is ``cents`` for ``per`` units: 6.00 €/h is ``Rate(600, 60)``
  per minute, 0.90 €/h is ``Rate(90, 60)``, 0.025 €/g is ``Rate(5, 2)``. Two integers keep
  any price exact, however small; the amount of a quantity is rounded once.

The rounding rules, by name:

``ROUND_HALF_UP`` (:func:`round_half_up`)
    An exact amount becomes cents by rounding to the nearest cent, halves away from
    zero (1.5 c → 2 c, -1.5 c → -2 c), so that a reversal is the exact negation.
    Used once per invoice line (:meth:`Rate.amount`), once per VAT amount
    (:func:`vat_on`), and once per session when deciding its minimum charge.

``MinuteRounding`` (:func:`billable_minutes`)
    Metered milliseconds become billable minutes: the grace minutes are taken off
    first, then the rest is rounded to a whole number of increments by the price
    version's rule — ``up`` (any started increment is billed; the default),
    ``nearest`` (half an increment or more counts, less does not) or ``down``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from server.billing.errors import InvalidAmount

MS_PER_MINUTE = 60_000
BASIS_POINTS = 10_000
"""VAT rates are integer basis points: 20 % is 2000, 5.5 % is 550."""


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` to the nearest integer, halves away from zero (ROUND_HALF_UP)."""
    if denominator <= 0:
        raise InvalidAmount(f"cannot divide by {denominator}")
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return magnitude if numerator >= 0 else -magnitude


class MinuteRounding(StrEnum):
    """How metered time becomes whole increments; the price version names one."""

    UP = "up"
    NEAREST = "nearest"
    DOWN = "down"


def billable_minutes(ms: int, *, grace_minutes: int, increment_minutes: int, rule: MinuteRounding) -> int:
    """The minutes billed for ``ms`` of metered time.

    The first ``grace_minutes`` are free; what is left is rounded to a whole number of
    ``increment_minutes`` by ``rule``. Always a multiple of the increment, never negative.
    """
    if ms < 0 or grace_minutes < 0 or increment_minutes < 1:
        raise InvalidAmount(f"bad metering: {ms} ms, {grace_minutes} grace, {increment_minutes} increment")
    rest = max(0, ms - grace_minutes * MS_PER_MINUTE)
    step = increment_minutes * MS_PER_MINUTE
    if rule is MinuteRounding.UP:
        increments = -(-rest // step)
    elif rule is MinuteRounding.NEAREST:
        increments = round_half_up(rest, step)
    else:
        increments = rest // step
    return increments * increment_minutes


@dataclass(frozen=True, slots=True)
class Rate:
    """``cents`` for every ``per`` units (minutes, grams, sessions...): exact, however small."""

    cents: int
    per: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.cents, int) or not isinstance(self.per, int):
            raise InvalidAmount("a rate is two integers: cents, and the units they pay for")
        if self.cents < 0 or self.per < 1:
            raise InvalidAmount(f"a rate of {self.cents} cents per {self.per} units cannot be right")

    @classmethod
    def per_hour(cls, cents: int) -> Rate:
        """A rate per minute given in cents per hour (600 → 6.00 €/h)."""
        return cls(cents, 60)

    @classmethod
    def per_minute(cls, cents: int) -> Rate:
        return cls(cents, 1)

    @property
    def is_free(self) -> bool:
        return self.cents == 0

    def amount(self, quantity: int) -> int:
        """The price of ``quantity`` units in cents, rounded once, ROUND_HALF_UP."""
        return round_half_up(quantity * self.cents, self.per)

    def exceeds(self, other: Rate) -> bool:
        """Whether this rate costs more per unit than ``other`` (compared exactly)."""
        return self.cents * other.per > other.cents * self.per


FREE = Rate(0, 1)


def amount_of(*priced: tuple[int, Rate]) -> int:
    """The price of several quantities, each at its rate, summed exactly and rounded once (HALF_UP)."""
    numerator, denominator = 0, 1
    for quantity, rate in priced:
        if quantity and rate.cents:
            common = math.lcm(denominator, rate.per)
            numerator = numerator * (common // denominator) + quantity * rate.cents * (common // rate.per)
            denominator = common
    return round_half_up(numerator, denominator)


def vat_on(amount_cents: int, rate_bp: int) -> int:
    """The VAT on a line's amount excluding VAT, ROUND_HALF_UP to the cent."""
    if rate_bp < 0:
        raise InvalidAmount(f"a VAT rate of {rate_bp} basis points cannot be right")
    return round_half_up(amount_cents * rate_bp, BASIS_POINTS)


_DECIMAL = re.compile(r"^(?P<sign>-)?(?P<units>\d{1,12})(?:[.,](?P<fraction>\d{1,8}))?$")


def _decimal_parts(text: str) -> tuple[bool, int, str]:
    cleaned = text.strip().replace("\u202f", "").replace("\xa0", "").replace(" ", "").removesuffix("€")
    match = _DECIMAL.match(cleaned)
    if match is None:
        raise InvalidAmount(f"{text!r} is not an amount in euros (write 12,50 or 12.50)")
    return match["sign"] is not None, int(match["units"]), match["fraction"] or ""


def parse_cents(text: str) -> int:
    """``"12,50"``, ``"12.5"`` or ``"12"`` euros as cents; more than two decimals is an error."""
    negative, units, fraction = _decimal_parts(text)
    if len(fraction) > 2:
        raise InvalidAmount(f"{text!r} has fractions of a cent: an amount is in whole cents")
    cents = units * 100 + int(fraction.ljust(2, "0"))
    return -cents if negative else cents


def parse_rate(text: str, per: int) -> Rate:
    """A price in euros (up to 8 decimals) for ``per`` units as an exact :class:`Rate`.

    ``parse_rate("0,90", 60)`` is 0.90 € an hour for a per-minute rate;
    ``parse_rate("0.025", 1)`` is 0.025 € a gram.
    """
    negative, units, fraction = _decimal_parts(text)
    if negative:
        raise InvalidAmount(f"a price cannot be negative: {text!r}")
    scale = 10 ** max(0, len(fraction) - 2)
    numerator = units * 100 * scale + int(fraction.ljust(2, "0"))
    divisor = math.gcd(numerator, scale) or 1  # only the decimals this text added: 0,90 €/h stays 90/60
    return Rate(numerator // divisor, per * scale // divisor)


_THIN = "\u202f"  # French thousands separator: a narrow no-break space
_NBSP = "\u00a0"


def _group(digits: str, separator: str) -> str:
    head = len(digits) % 3 or 3
    parts = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return separator.join(parts)


def format_cents(cents: int, language: str = "fr") -> str:
    """``123456`` as ``1 234,56 €`` (French) or ``€1,234.56`` (English)."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    if language == "fr":
        return f"{sign}{_group(str(units), _THIN)},{rest:02d}{_NBSP}€"
    return f"{sign}€{_group(str(units), ',')}.{rest:02d}"


def _rate_parts(rate: Rate, scale: int) -> tuple[int, str]:
    """Euros and 2 to 4 decimals of the price of ``scale`` units (display only, HALF_UP)."""
    ten_thousandths = round_half_up(rate.cents * scale * 100, rate.per)
    units, rest = divmod(ten_thousandths, 10_000)
    decimals = f"{rest:04d}"
    return units, decimals[:2] + decimals[2:].rstrip("0")


def format_rate(rate: Rate, scale: int = 1, language: str = "fr") -> str:
    """The price of ``scale`` units as text: ``0,90 €`` or ``€0.90``, with up to 4 decimals."""
    units, decimals = _rate_parts(rate, scale)
    if language == "fr":
        return f"{_group(str(units), _THIN)},{decimals}{_NBSP}€"
    return f"€{_group(str(units), ',')}.{decimals}"


def decimal_rate(rate: Rate, scale: int = 1, separator: str = ",") -> str:
    """The price of ``scale`` units in euros as a bare number (``0,90``), for files."""
    units, decimals = _rate_parts(rate, scale)
    return f"{units}{separator}{decimals}"

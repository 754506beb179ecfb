"""Price lists, their versions, and plans.

A **price list** is a set of prices a kind of payer pays: ``standard``, ``member``
(also for members of partner associations), or an organisation's own rates. Which list
applies to a payer is decided outside the rating engine and handed to it as a
:class:`PriceBook`.

A **price version** is the price of one machine, or of a machine class, in one price
list, from a start day (``valid_from``, in the workshop's time zone) until the next
version or until ``valid_until`` (exclusive). A session is priced by the version valid
on the day it **started**, so a price change never re-prices past sessions. Two versions
of one list for the same machine (or the same class) valid on a same day are an error
(:class:`~server.billing.errors.OverlappingPrices`). A version for a machine wins over
one for its class.

A **plan** has a monthly fee and minutes included per machine class each month.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from types import MappingProxyType

from server.billing.errors import InvalidPrice, NoPrice, OverlappingPrices
from server.billing.lines import Unit
from server.billing.money import FREE, MinuteRounding, Rate

DEFAULT_VAT_BP = 2000
"""20 %, the French standard rate; only printed when the association is subject to VAT."""


@dataclass(frozen=True, slots=True)
class PriceVersion:
    """What a session costs, for one machine or one machine class, from ``valid_from``.

    - ``running_rate``: per minute of running time (``Rate.per_hour(600)`` is 6 €/h).
    - ``idle_rate``: per minute unlocked but not running (setup); free by default.
    - ``session_fee_cents``: added to each session that is not a free try.
    - ``minimum_charge_cents``: a session with anything metered to pay is raised to this.
    - ``increment_minutes`` and ``rounding``: metered time is billed in whole increments.
    - ``grace_minutes``: the first minutes of running time of every session are free; a
      session whose running time is within them, with no idle time to pay, is a free try.
    - ``daily_cap_cents``: the most one member pays for one machine on one day (None: no cap).
    """

    id: str
    price_list: str
    valid_from: date
    running_rate: Rate
    machine: str | None = None
    machine_class: str | None = None
    valid_until: date | None = None
    idle_rate: Rate = FREE
    session_fee_cents: int = 0
    minimum_charge_cents: int = 0
    increment_minutes: int = 1
    rounding: MinuteRounding = MinuteRounding.UP
    grace_minutes: int = 0
    daily_cap_cents: int | None = None
    vat_rate_bp: int = DEFAULT_VAT_BP

    def __post_init__(self) -> None:
        if (self.machine is None) == (self.machine_class is None):
            raise InvalidPrice(
                f"price version {self.id!r} is for a machine or for a machine class: one of them"
            )
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise InvalidPrice(f"price version {self.id!r} ends on or before the day it starts")
        amounts = (self.session_fee_cents, self.minimum_charge_cents, self.grace_minutes, self.vat_rate_bp)
        if any(not isinstance(value, int) or value < 0 for value in amounts):
            raise InvalidPrice(f"price version {self.id!r}: fees, minimum, grace and VAT are whole and >= 0")
        if not 1 <= self.increment_minutes <= 24 * 60:
            raise InvalidPrice(f"price version {self.id!r}: the increment is 1 to 1440 minutes")
        if self.daily_cap_cents is not None and self.daily_cap_cents < 0:
            raise InvalidPrice(f"price version {self.id!r}: a daily cap cannot be negative")

    @property
    def target(self) -> str:
        """``machine:<slug>`` or ``class:<machine class>``."""
        return f"machine:{self.machine}" if self.machine is not None else f"class:{self.machine_class}"

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_until is None or day < self.valid_until)


def _ends(version: PriceVersion, following: PriceVersion | None) -> date | None:
    """The first day a version no longer applies: its own end, or the next version's start."""
    ends = [d for d in (version.valid_until, following.valid_from if following else None) if d is not None]
    return min(ends) if ends else None


def check_no_overlap(versions: Iterable[PriceVersion]) -> None:
    """Refuse two versions of one list, for one machine or class, valid on a same day.

    Versions without ``valid_until`` run until the next one starts, so only two such
    versions starting the same day overlap; an explicit ``valid_until`` past the next
    start overlaps too. Version ids must be unique.
    """
    by_target: dict[tuple[str, str], list[PriceVersion]] = defaultdict(list)
    seen: set[str] = set()
    for version in versions:
        if version.id in seen:
            raise OverlappingPrices(f"two price versions have the id {version.id!r}")
        seen.add(version.id)
        by_target[(version.price_list, version.target)].append(version)
    for (price_list, target), group in by_target.items():
        group.sort(key=lambda v: v.valid_from)
        for earlier, later in pairwise(group):
            if earlier.valid_from == later.valid_from or (
                earlier.valid_until is not None and earlier.valid_until > later.valid_from
            ):
                raise OverlappingPrices(
                    f"price list {price_list!r}, {target}: versions {earlier.id!r} and {later.id!r} "
                    f"are both valid on {later.valid_from.isoformat()}"
                )


@dataclass(frozen=True)
class PriceBook:
    """The price versions of the price list that applies to one payer."""

    versions: tuple[PriceVersion, ...]
    _index: Mapping[str, tuple[PriceVersion, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_no_overlap(self.versions)
        lists = {v.price_list for v in self.versions}
        if len(lists) > 1:
            raise InvalidPrice(f"a price book holds one price list, not {sorted(lists)}")
        index: dict[str, list[PriceVersion]] = defaultdict(list)
        for version in self.versions:
            index[version.target].append(version)
        frozen = {target: tuple(sorted(vs, key=lambda v: v.valid_from)) for target, vs in index.items()}
        object.__setattr__(self, "_index", MappingProxyType(frozen))

    def _find(self, target: str, day: date) -> PriceVersion | None:
        candidates = self._index.get(target, ())
        for position, version in enumerate(candidates):
            following = candidates[position + 1] if position + 1 < len(candidates) else None
            ends = _ends(version, following)
            if version.valid_from <= day and (ends is None or day < ends):
                return version
        return None

    def version_for(self, machine: str, machine_class: str, day: date) -> PriceVersion:
        """The version for ``machine`` on ``day``, else its class's; :class:`NoPrice` if neither."""
        found = self._find(f"machine:{machine}", day) or self._find(f"class:{machine_class}", day)
        if found is None:
            raise NoPrice(f"no price for machine {machine!r} (class {machine_class!r}) on {day.isoformat()}")
        return found


@dataclass(frozen=True)
class Plan:
    """A member's monthly plan: a fee, and minutes of running time included per machine class."""

    code: str
    name: str
    monthly_fee_cents: int
    included_minutes: Mapping[str, int]
    vat_rate_bp: int = DEFAULT_VAT_BP

    def __post_init__(self) -> None:
        if self.monthly_fee_cents < 0 or any(m < 0 for m in self.included_minutes.values()):
            raise InvalidPrice(f"plan {self.code!r}: the fee and the included minutes are >= 0")
        object.__setattr__(self, "included_minutes", MappingProxyType(dict(self.included_minutes)))

    def __hash__(self) -> int:
        return hash(
            (self.code, self.name, self.monthly_fee_cents, tuple(sorted(self.included_minutes.items())))
        )


@dataclass(frozen=True, slots=True)
class Consumable:
    """Something sold at the machine by the unit (thread by the cone, filament by the gram)."""

    code: str
    name: str
    unit: Unit
    unit_price: Rate
    """Per ``unit``: ``Rate(3, 1)`` is 0.03 € a gram, ``Rate(2500, 1000)`` is 25 € a kilogram."""
    vat_rate_bp: int = DEFAULT_VAT_BP

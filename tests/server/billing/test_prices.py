"""Price versions: one per machine or class and day, chosen by the day a session started."""

from dataclasses import replace
from datetime import date

import pytest

from server.billing.errors import InvalidPrice, NoPrice, OverlappingPrices
from server.billing.money import Rate
from server.billing.prices import Plan, PriceBook, PriceVersion, check_no_overlap
from tests.server.billing.sample import BOOK, OVERLOCKER_PRICE, SEWING_PRICE


def version(id: str, start: date, until: date | None = None, **terms: object) -> PriceVersion:
    base = PriceVersion(
        id=id, price_list="member", machine_class="industrial-sewing", valid_from=start, running_rate=Rate(1)
    )
    return replace(base, valid_until=until, **terms)  # type: ignore[arg-type]


def test_a_machine_version_wins_over_its_class() -> None:
    assert BOOK.version_for("overlocker-1", "overlocker", date(2026, 3, 2)) is OVERLOCKER_PRICE
    assert BOOK.version_for("sewing-9", "industrial-sewing", date(2026, 3, 2)) is SEWING_PRICE


def test_a_version_applies_from_its_first_day_until_the_next() -> None:
    january = version("jan", date(2026, 1, 1))
    april = version("apr", date(2026, 4, 1), running_rate=Rate(2))
    book = PriceBook((april, january))
    assert book.version_for("s", "industrial-sewing", date(2026, 3, 31)) is january
    assert book.version_for("s", "industrial-sewing", date(2026, 4, 1)) is april
    assert book.version_for("s", "industrial-sewing", date(2030, 1, 1)) is april
    with pytest.raises(NoPrice) as caught:
        book.version_for("s", "industrial-sewing", date(2025, 12, 31))
    assert isinstance(caught.value, LookupError)
    assert "2025-12-31" in str(caught.value)


def test_a_version_may_end_and_leave_a_gap() -> None:
    book = PriceBook(
        (version("jan", date(2026, 1, 1), until=date(2026, 2, 1)), version("mar", date(2026, 3, 1)))
    )
    with pytest.raises(NoPrice):
        book.version_for("s", "industrial-sewing", date(2026, 2, 14))


@pytest.mark.parametrize(
    "versions",
    [
        (version("a", date(2026, 1, 1)), version("b", date(2026, 1, 1))),
        (version("a", date(2026, 1, 1), until=date(2026, 5, 1)), version("b", date(2026, 4, 1))),
        (version("a", date(2026, 1, 1)), replace(version("b", date(2026, 1, 1)), price_list="member")),
        (version("a", date(2026, 1, 1)), version("a", date(2026, 6, 1))),
    ],
)
def test_overlapping_validity_is_refused(versions: tuple[PriceVersion, ...]) -> None:
    with pytest.raises(OverlappingPrices) as caught:
        check_no_overlap(versions)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(OverlappingPrices):
        PriceBook(versions)


def test_versions_of_other_lists_or_targets_do_not_overlap() -> None:
    check_no_overlap(
        (
            version("a", date(2026, 1, 1)),
            replace(version("b", date(2026, 1, 1)), price_list="standard"),
            replace(version("c", date(2026, 1, 1)), machine_class=None, machine="sewing-1"),
            version("d", date(2026, 2, 1)),
            version("e", date(2026, 3, 1), until=date(2026, 4, 1)),
            version("f", date(2026, 4, 1)),
        )
    )


def test_a_book_holds_one_price_list() -> None:
    with pytest.raises(InvalidPrice):
        PriceBook(
            (version("a", date(2026, 1, 1)), replace(version("b", date(2026, 1, 1)), price_list="standard"))
        )


@pytest.mark.parametrize(
    "terms",
    [
        {"machine": "sewing-1"},  # both a machine and a class
        {"machine_class": None},  # neither
        {"valid_until": date(2026, 1, 1)},
        {"session_fee_cents": -1},
        {"minimum_charge_cents": -1},
        {"grace_minutes": -1},
        {"increment_minutes": 0},
        {"daily_cap_cents": -1},
        {"vat_rate_bp": -1},
    ],
)
def test_price_terms_that_contradict_each_other_are_refused(terms: dict[str, object]) -> None:
    with pytest.raises(InvalidPrice):
        replace(version("a", date(2026, 1, 1)), **terms)  # type: ignore[arg-type]


def test_a_plan_is_frozen_and_checked() -> None:
    minutes = {"industrial-sewing": 600}
    plan = Plan("p", "Couture", 3000, minutes)
    minutes["industrial-sewing"] = 0
    assert plan.included_minutes["industrial-sewing"] == 600
    assert hash(plan) == hash(Plan("p", "Couture", 3000, {"industrial-sewing": 600}))
    with pytest.raises(InvalidPrice):
        Plan("p", "Couture", -1, {})
    with pytest.raises(InvalidPrice):
        Plan("p", "Couture", 0, {"overlocker": -5})

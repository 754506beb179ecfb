"""Properties of rating, whatever the prices and the sessions: no negative charge, caps
respected, plans never exceeded, minimums met, and the same lines however often it runs."""

import random
from collections import defaultdict
from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from server.billing.lines import CAPPED_KINDS
from server.billing.money import Rate
from server.billing.periods import Period
from server.billing.prices import Plan, PriceBook
from server.billing.rating import DayKey, MeteredSession, rate_usage
from tests.server.billing.strategies import MACHINES, MEMBERS, books, metered_sessions, plans


@given(metered_sessions(), books(), plans())
def test_no_charge_is_negative(
    sessions: list[MeteredSession], book: PriceBook, member_plans: dict[tuple[int, Period], Plan]
) -> None:
    rating = rate_usage(sessions, book, plans=member_plans)
    per_day: dict[DayKey, int] = defaultdict(int)
    for line in rating.lines:
        assert line.machine is not None
        assert line.day is not None
        per_day[(line.member.id, line.machine.slug, line.day)] += line.amount_cents
    assert all(total >= 0 for total in per_day.values())
    assert rating.total_cents >= 0
    for rated in rating.sessions:
        charge = rated.charge
        assert (
            min(charge.fee_cents, charge.metered_cents, charge.minimum_topup_cents, charge.charged_minutes)
            >= 0
        )


@given(
    metered_sessions(),
    books(),
    st.dictionaries(
        st.tuples(
            st.sampled_from([m.id for m in MEMBERS]),
            st.sampled_from([m.slug for m in MACHINES]),
            st.dates(date(2026, 3, 1), date(2026, 3, 31)),
        ),
        st.integers(0, 8000),
        max_size=5,
    ),
)
def test_the_daily_cap_is_respected(
    sessions: list[MeteredSession], book: PriceBook, before: dict[DayKey, int]
) -> None:
    rating = rate_usage(sessions, book, charged_before=before)
    cap = book.versions[0].daily_cap_cents
    per_day: dict[DayKey, int] = defaultdict(int)
    for line in rating.lines:
        if line.kind in CAPPED_KINDS:
            assert line.machine is not None
            assert line.day is not None
            per_day[(line.member.id, line.machine.slug, line.day)] += line.amount_cents
    for key, total in per_day.items():
        assert total >= 0
        if cap is not None:
            assert total <= max(0, cap - before.get(key, 0))


@settings(max_examples=50)
@given(metered_sessions(), books(), plans(), st.randoms(use_true_random=False))
def test_rating_is_deterministic(
    sessions: list[MeteredSession],
    book: PriceBook,
    member_plans: dict[tuple[int, Period], Plan],
    shuffler: random.Random,
) -> None:
    first = rate_usage(sessions, book, plans=member_plans)
    shuffled = list(sessions)
    shuffler.shuffle(shuffled)
    assert rate_usage(shuffled, book, plans=member_plans) == first
    assert rate_usage(sessions, book, plans=member_plans) == first


@given(metered_sessions(), books(), plans())
def test_plans_give_no_more_than_their_minutes(
    sessions: list[MeteredSession], book: PriceBook, member_plans: dict[tuple[int, Period], Plan]
) -> None:
    rating = rate_usage(sessions, book, plans=member_plans)
    used: dict[int, int] = defaultdict(int)
    for rated in rating.sessions:
        used[rated.member_id] += rated.charge.included_minutes
    for member_id, minutes in used.items():
        plan = member_plans.get((member_id, Period(2026, 3)))
        assert minutes <= (plan.included_minutes["industrial-sewing"] if plan else 0)


@given(metered_sessions(), books())
def test_every_session_with_metered_time_pays_the_minimum(
    sessions: list[MeteredSession], book: PriceBook
) -> None:
    version = book.versions[0]
    for rated in rate_usage(sessions, book).sessions:
        charge = rated.charge
        if charge.free_try:
            assert charge.total_cents == 0
        else:
            assert charge.fee_cents == version.session_fee_cents
            if charge.metered_cents or charge.minimum_topup_cents:
                assert charge.total_cents >= version.minimum_charge_cents
            if charge.minimum_topup_cents:
                assert charge.total_cents == version.minimum_charge_cents


@given(metered_sessions(), books())
def test_the_lines_hold_every_billable_minute(sessions: list[MeteredSession], book: PriceBook) -> None:
    rating = rate_usage(sessions, book)
    running = sum(line.quantity for line in rating.lines if line.kind == "running")
    idle = sum(line.quantity for line in rating.lines if line.kind == "idle")
    assert running == sum(r.charge.charged_minutes for r in rating.sessions)
    assert idle == sum(r.charge.idle_minutes for r in rating.sessions)


@given(metered_sessions(), books(), st.dates(date(2026, 4, 1), date(2030, 1, 1)), st.integers(0, 10_000))
def test_a_later_price_version_changes_nothing_before_it(
    sessions: list[MeteredSession], book: PriceBook, start: date, cents: int
) -> None:
    later = replace(book.versions[0], id="later", valid_from=start, running_rate=Rate(cents, 60))
    assert rate_usage(sessions, PriceBook((*book.versions, later))) == rate_usage(sessions, book)

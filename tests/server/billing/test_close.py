"""The month close: in order, once, the same invoices however often it is run; late sessions move on."""

from datetime import date

import pytest
from hypothesis import given, settings

from server.billing.close import PayerUsage, billing_period_of, check_can_close, close_period
from server.billing.errors import InvalidPeriod, PeriodClosed
from server.billing.invoices import GENESIS_HASH, Invoice, Payer, PayerKind, verify_chain
from server.billing.periods import Period
from server.billing.prices import PriceBook
from server.billing.rating import MeteredSession, plan_fee_line, rate_usage
from tests.server.billing.sample import (
    ALICE,
    ALICE_PAYER,
    BOB,
    BOOK,
    MARCH,
    ORG_PAYER,
    PLAN,
    SELLER,
    at,
    session,
)
from tests.server.billing.strategies import books, metered_sessions

APRIL_1 = date(2026, 4, 1)
FEBRUARY = Period(2026, 2)


def usage() -> list[PayerUsage]:
    alice = rate_usage([session("a", at(2, 9), 62)], BOOK, plans={(ALICE.id, MARCH): PLAN})
    org = rate_usage([session("b", at(3, 9), 30, member=BOB)], BOOK)
    bob_alone = Payer(PayerKind.MEMBER, BOB.id, BOB.name)
    return [
        PayerUsage(ORG_PAYER, org.lines),
        PayerUsage(bob_alone, ()),  # nothing to invoice
        PayerUsage(ALICE_PAYER, (plan_fee_line(ALICE, PLAN, MARCH), *alice.lines)),
    ]


def test_a_close_numbers_and_chains_an_invoice_per_payer() -> None:
    closed = close_period(MARCH, usage(), closed={FEBRUARY}, issued_on=APRIL_1, seller=SELLER)
    assert [(i.number, i.payer.name) for i in closed.invoices] == [
        ("2026-000001", "Alice Martin"),
        ("2026-000002", "Collectif Mailles & Œuvres"),
    ]
    assert closed.invoices[0].due_on == date(2026, 4, 16)
    assert verify_chain(closed.invoices) == closed.last_hash
    assert closed.last_number == "2026-000002"
    assert [e.reference for e in closed.entries] == ["2026-000001", "2026-000002"]
    assert all(e.number is None for e in closed.entries)


def test_a_close_continues_the_numbers_and_the_chain() -> None:
    march = close_period(MARCH, usage(), closed={FEBRUARY}, issued_on=APRIL_1, seller=SELLER)
    april_usage = [PayerUsage(ALICE_PAYER, (plan_fee_line(ALICE, PLAN, Period(2026, 4)),))]
    april = close_period(
        Period(2026, 4),
        april_usage,
        closed={FEBRUARY, MARCH},
        issued_on=date(2026, 5, 2),
        seller=SELLER,
        last_number=march.last_number,
        last_hash=march.last_hash,
    )
    assert april.invoices[0].number == "2026-000003"
    verify_chain([*march.invoices, *april.invoices])


def test_re_running_a_close_changes_nothing() -> None:
    first = close_period(MARCH, usage(), closed=set(), issued_on=APRIL_1, seller=SELLER)
    again = close_period(MARCH, list(reversed(usage())), closed=set(), issued_on=APRIL_1, seller=SELLER)
    assert again == first


@settings(max_examples=30)
@given(metered_sessions(), books())
def test_a_close_is_deterministic_and_its_invoices_sum_their_lines(
    sessions: list[MeteredSession], book: PriceBook
) -> None:
    by_member: dict[int, list[MeteredSession]] = {}
    for s in sessions:
        by_member.setdefault(s.member.id, []).append(s)
    payers = [
        PayerUsage(Payer(PayerKind.MEMBER, member_id, f"m{member_id}"), rate_usage(group, book).lines)
        for member_id, group in by_member.items()
    ]
    first = close_period(MARCH, payers, closed=set(), issued_on=APRIL_1, seller=SELLER)
    assert close_period(MARCH, payers[::-1], closed=set(), issued_on=APRIL_1, seller=SELLER) == first
    for invoice in first.invoices:
        assert invoice.total_cents == sum(line.total_cents for line in invoice.lines) >= 0
    verify_chain(first.invoices)


def test_closing_a_period_twice_is_refused_and_changes_nothing() -> None:
    payers = usage()
    with pytest.raises(PeriodClosed) as caught:
        close_period(MARCH, payers, closed={FEBRUARY, MARCH}, issued_on=APRIL_1, seller=SELLER)
    assert isinstance(caught.value, ValueError)
    assert payers == usage()


@pytest.mark.parametrize(
    ("period", "closed", "issued_on", "error"),
    [
        (FEBRUARY, {FEBRUARY, MARCH}, APRIL_1, PeriodClosed),
        (Period(2026, 1), {MARCH}, APRIL_1, PeriodClosed),
        (Period(2026, 4), {FEBRUARY}, date(2026, 5, 1), InvalidPeriod),  # March is not closed yet
        (MARCH, {FEBRUARY}, date(2026, 3, 31), InvalidPeriod),  # March is not over
    ],
)
def test_periods_are_closed_in_order_once_they_are_over(
    period: Period, closed: set[Period], issued_on: date, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_can_close(period, closed, issued_on)


def test_a_payer_comes_once_to_a_close() -> None:
    twice = [PayerUsage(ALICE_PAYER, ()), PayerUsage(ALICE_PAYER, ())]
    with pytest.raises(InvalidPeriod):
        close_period(MARCH, twice, closed=set(), issued_on=APRIL_1, seller=SELLER)


def test_a_late_session_is_billed_in_the_first_open_period() -> None:
    assert billing_period_of(date(2026, 3, 30), set()) == MARCH
    assert billing_period_of(date(2026, 3, 30), {FEBRUARY}) == MARCH
    assert billing_period_of(date(2026, 3, 30), {FEBRUARY, MARCH}) == Period(2026, 4)
    assert billing_period_of(date(2026, 1, 30), {FEBRUARY, MARCH}) == Period(2026, 4)


def test_a_late_session_becomes_an_adjustment_line_on_the_next_invoice() -> None:
    march = close_period(MARCH, usage(), closed={FEBRUARY}, issued_on=APRIL_1, seller=SELLER)
    late = session("late", at(30, 9), 62)  # replayed by a gateway after the March close
    april = Period(2026, 4)
    assert billing_period_of(date(2026, 3, 30), {FEBRUARY, MARCH}) == april
    rating = rate_usage([late], BOOK, billing_period=april)
    april_close = close_period(
        april,
        [PayerUsage(ALICE_PAYER, rating.lines)],
        closed={FEBRUARY, MARCH},
        issued_on=date(2026, 5, 1),
        seller=SELLER,
        last_number=march.last_number,
        last_hash=march.last_hash,
    )
    (invoice,) = april_close.invoices
    assert {line.adjustment_for for line in invoice.lines} == {MARCH}
    assert invoice.period == april
    chain: list[Invoice] = [*march.invoices, *april_close.invoices]
    assert verify_chain(chain, GENESIS_HASH) == april_close.last_hash

"""Hypothesis strategies: price versions, sessions, lines and invoices of any shape."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import strategies as st

from server.billing.invoices import (
    GENESIS_HASH,
    Invoice,
    Payer,
    PayerKind,
    Seller,
    build_invoice,
    format_number,
)
from server.billing.lines import ChargeLine, LineKind, MachineRef, MemberRef, Unit
from server.billing.money import MinuteRounding, Rate
from server.billing.periods import Period
from server.billing.prices import Plan, PriceBook, PriceVersion
from server.billing.rating import MeteredSession
from tests.server.billing.sample import ALICE, BOB, CHLOE, SEWING, SEWING_2

MEMBERS = (ALICE, BOB, CHLOE)
MACHINES = (SEWING, SEWING_2)

rates = st.builds(Rate, st.integers(0, 3000), st.sampled_from([1, 7, 60, 600]))


@st.composite
def price_versions(draw: st.DrawFn, machine_class: str = "industrial-sewing") -> PriceVersion:
    return PriceVersion(
        id="v-2026",
        price_list="member",
        machine_class=machine_class,
        valid_from=date(2026, 1, 1),
        running_rate=draw(rates),
        idle_rate=draw(st.one_of(st.just(Rate(0)), rates)),
        session_fee_cents=draw(st.integers(0, 500)),
        minimum_charge_cents=draw(st.integers(0, 1500)),
        increment_minutes=draw(st.sampled_from([1, 5, 15, 30])),
        rounding=draw(st.sampled_from(MinuteRounding)),
        grace_minutes=draw(st.integers(0, 10)),
        daily_cap_cents=draw(st.one_of(st.none(), st.integers(0, 6000))),
        vat_rate_bp=draw(st.sampled_from([0, 550, 1000, 2000])),
    )


def books() -> st.SearchStrategy[PriceBook]:
    return price_versions().map(lambda version: PriceBook((version,)))


@st.composite
def metered_sessions(draw: st.DrawFn, max_size: int = 25) -> list[MeteredSession]:
    count = draw(st.integers(0, max_size))
    sessions = []
    for index in range(count):
        started = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 30 * 24 * 60 - 1)))
        sessions.append(
            MeteredSession(
                session_id=f"s{index:03d}",
                member=draw(st.sampled_from(MEMBERS)),
                machine=draw(st.sampled_from(MACHINES)),
                started_at=started,
                running_ms=draw(st.integers(0, 6 * 3_600_000)),
                idle_ms=draw(st.integers(0, 3_600_000)),
            )
        )
    return sessions


def plans() -> st.SearchStrategy[dict[tuple[int, Period], Plan]]:
    plan = st.builds(
        Plan,
        st.just("p"),
        st.just("Couture"),
        st.integers(0, 5000),
        st.fixed_dictionaries({"industrial-sewing": st.integers(0, 900)}),
    )
    return st.dictionaries(st.sampled_from([(m.id, Period(2026, 3)) for m in MEMBERS]), plan, max_size=3)


member_refs = st.builds(MemberRef, st.integers(1, 10**6), st.text(min_size=1, max_size=30))
machine_refs = st.builds(
    MachineRef, st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True), st.text(max_size=30), st.just("sewing")
)


@st.composite
def charge_lines(draw: st.DrawFn) -> ChargeLine:
    kind = draw(st.sampled_from([k for k in LineKind if k is not LineKind.DAILY_CAP]))
    return ChargeLine(
        kind=kind,
        member=draw(member_refs),
        quantity=draw(st.integers(0, 10_000)),
        unit=draw(st.sampled_from(Unit)),
        unit_price=draw(st.one_of(st.none(), rates)),
        amount_cents=draw(st.integers(0, 10**7)),
        vat_rate_bp=draw(st.sampled_from([0, 550, 1000, 2000])),
        machine=draw(st.one_of(st.none(), machine_refs)),
        day=draw(st.one_of(st.none(), st.dates(date(2026, 1, 1), date(2026, 12, 31)))),
        item=draw(st.text(max_size=20)),
        price_version=draw(st.text(max_size=10)),
        adjustment_for=draw(st.one_of(st.none(), st.just(Period(2026, 2)))),
    )


sellers = st.builds(
    Seller,
    st.text(min_size=1, max_size=40),
    st.lists(st.text(max_size=30), max_size=3).map(tuple),
    st.from_regex(r"\d{14}", fullmatch=True),
    st.booleans(),
    st.text(max_size=15),
    st.text(max_size=60),
)
payers = st.builds(
    Payer,
    st.sampled_from(PayerKind),
    st.integers(1, 10**6),
    st.text(min_size=1, max_size=40),
    st.lists(st.text(max_size=30), max_size=3).map(tuple),
    st.text(max_size=10),
    st.text(max_size=30),
)


@st.composite
def invoice_chains(draw: st.DrawFn, max_size: int = 4) -> list[Invoice]:
    """Invoices numbered 2026-000001, 2026-000002... each chained to the one before."""
    seller = draw(sellers)
    chain: list[Invoice] = []
    previous = GENESIS_HASH
    for sequence in range(1, draw(st.integers(1, max_size)) + 1):
        invoice = build_invoice(
            number=format_number(2026, sequence),
            issued_on=date(2026, 4, 1),
            due_on=date(2026, 4, 16),
            period=Period(2026, 3),
            seller=seller,
            payer=draw(payers),
            lines=draw(st.lists(charge_lines(), max_size=4)),
            previous_hash=previous,
        )
        chain.append(invoice)
        previous = invoice.hash
    return chain

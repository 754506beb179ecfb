"""The treasurer's catalogue on the database: prices, plans, payers, consumables and sales, and every refusal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing import catalogue, consumables, payers
from server.billing.catalogue import AlreadyRecorded, InvalidEntry, PriceTerms
from server.billing.errors import (
    BillingError,
    InvalidAmount,
    InvalidPeriod,
    InvalidPrice,
    NoPrice,
    OverlappingPrices,
    PeriodClosed,
)
from server.billing.money import Rate
from server.billing.monthly import close_month
from server.billing.periods import Period
from server.billing.store import NotConfigured, UnknownRecord, plans_by_month
from server.models import (
    AuditEntry,
    ConsumableRow,
    ConsumableSaleRow,
    InvoiceLineRow,
    InvoiceRow,
    Member,
    MemberPlan,
    Organisation,
    PlanRow,
    PriceList,
    PriceVersionRow,
)
from tests.server.billing_db.conftest import Books, add_session, at
from tests.server.conftest import Workshop

NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)
MARCH, APRIL, MAY = Period(2026, 3), Period(2026, 4), Period(2026, 5)
SIX_AN_HOUR = PriceTerms(running=Rate(600, 60))


def counts(db: Session) -> tuple[int, ...]:
    tables = (
        PriceList, PriceVersionRow, PlanRow, MemberPlan, Organisation, ConsumableRow, ConsumableSaleRow,
        AuditEntry,
    )  # fmt: skip
    return tuple(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0 for model in tables)


def refused(db: Session, error: type[BillingError], match: str, step: Callable[[], Any]) -> None:
    """``step`` is refused with ``error`` saying ``match``, and the database is as it was."""
    before = counts(db)
    with pytest.raises(error, match=match):
        step()
    db.rollback()
    assert counts(db) == before


def test_price_versions_are_added_listed_and_found_by_day(db: Session, books: Books) -> None:
    catalogue.add_price_list(db, "workshop", "Tarif atelier", now=NOW)
    version = catalogue.add_version(
        db, "workshop", PriceTerms(running=Rate(90, 60), session_fee_cents=50, grace_minutes=3,
                                   increment_minutes=5, daily_cap_cents=3000, vat_rate_bp=550),
        valid_from=date(2026, 4, 1), machine_class="sewing", now=NOW,
    )  # fmt: skip
    assert version.id == "workshop-sewing-20260401"
    assert (version.running_rate, version.session_fee_cents, version.vat_rate_bp) == (
        Rate(90, 60), 50, 550,
    )  # fmt: skip
    own = catalogue.add_version(
        db, "workshop", SIX_AN_HOUR, valid_from=date(2026, 4, 1), machine="sewing-1", now=NOW
    )
    change = catalogue.add_version(
        db, "workshop", PriceTerms(running=Rate(700, 60)), valid_from=date(2026, 6, 1),
        machine="sewing-1", code="sewing-1-summer", now=NOW,
    )  # fmt: skip
    db.commit()

    listed = catalogue.price_versions(db, "workshop")
    assert [v.id for v in listed] == [version.id, own.id, change.id]  # classes, then machines, by day
    on = catalogue.version_on
    assert (
        on(db, "workshop", date(2026, 5, 31), machine="sewing-1").id == own.id
    )  # a machine's own price wins
    assert on(db, "workshop", date(2026, 6, 1), machine="sewing-1").id == "sewing-1-summer"
    assert on(db, "workshop", date(2026, 6, 1), machine_class="sewing").id == version.id
    with pytest.raises(NoPrice, match="overlocker-1"):
        on(db, "workshop", date(2026, 6, 1), machine="overlocker-1")
    with pytest.raises(NoPrice):
        on(db, "workshop", date(2026, 3, 31), machine_class="sewing")
    assert {(row.code, n) for row, n in catalogue.price_lists(db)} >= {("workshop", 3), ("standard", 2)}
    actions = db.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-4:] == ["price_list.add", "price_version.add", "price_version.add", "price_version.add"]


def test_a_bad_price_version_is_refused_and_changes_nothing(db: Session, books: Books) -> None:
    def add(terms: PriceTerms = SIX_AN_HOUR, **where: Any) -> Callable[[], Any]:
        given: dict[str, Any] = {"valid_from": date(2026, 4, 1), "machine_class": "sewing"}
        return lambda: catalogue.add_version(db, "standard", terms, now=NOW, **(given | where))

    # books has a standard price for the class sewing from 2026-01-01.
    refused(db, OverlappingPrices, "both valid on 2026-01-01", add(valid_from=date(2026, 1, 1)))
    add(valid_from=date(2026, 6, 1))()
    db.commit()
    overlap_end = add(valid_from=date(2026, 5, 1), valid_until=date(2026, 6, 2))
    refused(db, OverlappingPrices, "both valid on 2026-06-01", overlap_end)
    refused(db, InvalidAmount, "cannot be right", lambda: PriceTerms(running=Rate(-1, 60)))
    refused(
        db,
        InvalidAmount,
        "session fee cannot be negative",
        add(PriceTerms(SIX_AN_HOUR.running, session_fee_cents=-50)),
    )
    refused(
        db,
        InvalidAmount,
        "minimum charge cannot be negative",
        add(PriceTerms(SIX_AN_HOUR.running, minimum_charge_cents=-1)),
    )
    refused(
        db,
        InvalidAmount,
        "daily cap cannot be negative",
        add(PriceTerms(SIX_AN_HOUR.running, daily_cap_cents=-1)),
    )
    refused(db, InvalidPrice, "increment", add(PriceTerms(SIX_AN_HOUR.running, increment_minutes=0)))
    refused(db, InvalidPrice, "grace", add(PriceTerms(SIX_AN_HOUR.running, grace_minutes=-3)))
    refused(db, InvalidAmount, "VAT rate", add(PriceTerms(SIX_AN_HOUR.running, vat_rate_bp=20_000)))
    refused(db, UnknownRecord, "no machine 'sewing-9'", add(machine="sewing-9", machine_class=None))
    refused(db, UnknownRecord, "no machine of class 'sewnig'", add(machine_class="sewnig"))
    refused(db, InvalidPrice, "one of them", add(machine="sewing-1"))
    refused(db, InvalidPrice, "one of them", add(machine_class=None))
    refused(db, InvalidPrice, "must start before", add(valid_until=date(2026, 4, 1)))
    refused(db, AlreadyRecorded, "exists already", add(valid_from=date(2026, 8, 1), code="std-sewing-2026"))
    refused(
        db, InvalidEntry, "invalid price version code", add(valid_from=date(2026, 8, 1), code="Summer 26")
    )
    unknown = partial(
        catalogue.add_version,
        db,
        "nope",
        SIX_AN_HOUR,
        valid_from=date(2026, 4, 1),
        machine_class="sewing",
        now=NOW,
    )
    refused(db, UnknownRecord, "no price list 'nope'", unknown)
    refused(
        db,
        AlreadyRecorded,
        "exists already",
        lambda: catalogue.add_price_list(db, "standard", "Again", now=NOW),
    )
    refused(
        db, InvalidEntry, "invalid price list code", lambda: catalogue.add_price_list(db, "Std", "x", now=NOW)
    )
    refused(db, InvalidEntry, "needs a name", lambda: catalogue.add_price_list(db, "other", "  ", now=NOW))

    close_month(db, MARCH, date(2026, 4, 2))
    db.commit()
    refused(
        db,
        PeriodClosed,
        "2026-03, which is closed",
        add(valid_from=date(2026, 3, 15), machine="printer-1", machine_class=None),
    )


def test_plans_and_who_is_on_them(db: Session, books: Books) -> None:
    w = books.workshop
    plan = catalogue.add_plan(
        db, "maker", "Maker", 1500, {"sewing": 120, "fdm-printer": 60}, vat_rate_bp=0, now=NOW
    )
    assert {m.machine_class: m.minutes for m in plan.included} == {"sewing": 120, "fdm-printer": 60}
    rows = catalogue.set_member_plan(db, w.alice, "maker", APRIL, Period(2026, 6), now=NOW)
    assert [(r.valid_from, r.plan_id) for r in rows] == [
        (date(2026, 4, 1), plan.id),
        (date(2026, 7, 1), None),
    ]
    catalogue.set_member_plan(db, w.bob, None, MAY, now=NOW)  # bob's plan (from books) stops in May
    db.commit()
    found = plans_by_month(db, [MARCH, APRIL, Period(2026, 6), Period(2026, 7)])
    assert found[(w.alice, APRIL)].code == "maker"
    assert found[(w.alice, Period(2026, 6))].code == "maker"
    assert (w.alice, MARCH) not in found
    assert (w.alice, Period(2026, 7)) not in found
    assert (w.bob, Period(2026, 6)) not in found
    assert [(r.member_id, code) for r, code in catalogue.member_plans(db, w.alice)] == [
        (w.alice, "maker"), (w.alice, None),
    ]  # fmt: skip
    assert [p.code for p in catalogue.plans(db)] == ["creator", "maker"]

    add = catalogue.add_plan
    refused(db, AlreadyRecorded, "exists already", lambda: add(db, "maker", "Again", 0, {}, now=NOW))
    refused(db, InvalidAmount, "cannot be negative", lambda: add(db, "cheap", "Cheap", -100, {}, now=NOW))
    refused(db, UnknownRecord, "class 'sweing'", lambda: add(db, "x", "X", 100, {"sweing": 60}, now=NOW))
    refused(db, InvalidPrice, "positive whole", lambda: add(db, "x", "X", 100, {"sewing": 0}, now=NOW))
    choose = catalogue.set_member_plan
    refused(db, UnknownRecord, "no plan 'gold'", lambda: choose(db, w.erin, "gold", MAY, now=NOW))
    refused(db, UnknownRecord, "no member 999", lambda: choose(db, 999, "maker", MAY, now=NOW))
    refused(
        db,
        AlreadyRecorded,
        "already has a plan change from 2026-04",
        lambda: choose(db, w.alice, "creator", APRIL, now=NOW),
    )
    refused(
        db,
        AlreadyRecorded,
        "already has a plan change from 2026-07",
        lambda: choose(db, w.alice, "creator", MAY, Period(2026, 6), now=NOW),
    )
    refused(db, InvalidEntry, "before it starts", lambda: choose(db, w.erin, "maker", MAY, APRIL, now=NOW))
    refused(db, AlreadyRecorded, "no plan in 2026-05 to stop", lambda: choose(db, w.erin, None, MAY, now=NOW))
    close_month(db, MARCH, date(2026, 4, 2))
    db.commit()
    refused(db, PeriodClosed, "which is closed", lambda: choose(db, w.erin, "maker", MARCH, now=NOW))


def test_organisations_and_partners(db: Session, books: Books) -> None:
    w = books.workshop
    school = payers.add_organisation(
        db,
        "Lycée",
        address="1 rue de l'École\n69001 Lyon",
        email="a@example.org",
        price_list="member",
        now=NOW,
    )
    payers.attach_member(db, school.id, w.alice, now=NOW)
    db.commit()
    (view,) = payers.organisations(db, school.id)
    assert (view.price_list, [m.id for m in view.members]) == ("member", [w.alice])
    refused(
        db,
        AlreadyRecorded,
        "pays for member .* already",
        lambda: payers.attach_member(db, school.id, w.alice, now=NOW),
    )
    refused(
        db,
        AlreadyRecorded,
        "detach them from it first",
        lambda: payers.attach_member(db, books.organisation, w.alice, now=NOW),
    )
    refused(db, UnknownRecord, "no organisation 999", lambda: payers.attach_member(db, 999, w.bob, now=NOW))
    refused(db, UnknownRecord, "no member 999", lambda: payers.attach_member(db, school.id, 999, now=NOW))
    refused(
        db,
        UnknownRecord,
        "not paid for by any organisation",
        lambda: payers.detach_member(db, w.bob, now=NOW),
    )
    refused(
        db,
        UnknownRecord,
        "not paid for by organisation",
        lambda: payers.detach_member(db, w.alice, organisation_id=books.organisation, now=NOW),
    )
    refused(
        db,
        UnknownRecord,
        "no price list 'nope'",
        lambda: payers.add_organisation(db, "X", price_list="nope", now=NOW),
    )
    refused(db, InvalidEntry, "needs a name", lambda: payers.add_organisation(db, "", now=NOW))
    refused(
        db, InvalidEntry, "not an e-mail", lambda: payers.add_organisation(db, "X", email="nobody", now=NOW)
    )
    payers.detach_member(db, w.alice, organisation_id=school.id, now=NOW)
    db.commit()
    assert db.get(Member, w.alice) is not None
    assert payers.organisations(db, school.id)[0].members == ()

    payers.set_partner(db, w.erin, "Les Fils du Quartier", now=NOW)
    db.commit()
    assert [(m.id, m.partner_association) for m in payers.partner_members(db)] == [
        (w.erin, "Les Fils du Quartier")
    ]
    refused(
        db,
        AlreadyRecorded,
        "already",
        lambda: payers.set_partner(db, w.erin, "Les Fils du Quartier", now=NOW),
    )
    refused(db, UnknownRecord, "belongs to no partner", lambda: payers.set_partner(db, w.bob, None, now=NOW))
    payers.set_partner(db, w.erin, None, now=NOW)
    db.commit()
    assert payers.partner_members(db) == []
    actions = db.scalars(sa.select(AuditEntry.action).where(AuditEntry.action.like("organisation.%"))).all()
    assert actions == ["organisation.add", "organisation.attach", "organisation.detach"]


def test_partners_need_the_partners_price_list(db: Session, workshop: Workshop) -> None:
    refused(
        db,
        NotConfigured,
        "settings are missing",
        lambda: payers.set_partner(db, workshop.bob, "Fils", now=NOW),
    )


def test_consumables_and_their_refusals(db: Session, books: Books) -> None:
    pla = consumables.add_consumable(db, "pla", "Filament PLA", "gram", Rate(5, 2), vat_rate_bp=550, now=NOW)
    assert (pla.unit, pla.unit_cents, pla.unit_per) == ("g", 5, 2)
    consumables.add_consumable(db, "thread", "Cône de fil", "piece", Rate(350), now=NOW)
    consumables.update_consumable(db, "thread", price=Rate(380), now=NOW)
    db.commit()
    assert [(c.code, c.unit_cents) for c in consumables.consumables(db)] == [("pla", 5), ("thread", 380)]
    add = consumables.add_consumable
    refused(db, AlreadyRecorded, "exists already", lambda: add(db, "pla", "Again", "g", Rate(1), now=NOW))
    refused(db, InvalidEntry, "not 'litre'", lambda: add(db, "oil", "Oil", "litre", Rate(1), now=NOW))
    refused(
        db,
        InvalidEntry,
        "invalid consumable code",
        lambda: add(db, "Oil can", "Oil", "piece", Rate(1), now=NOW),
    )
    refused(
        db,
        InvalidAmount,
        "VAT rate",
        lambda: add(db, "oil", "Oil", "piece", Rate(1), vat_rate_bp=-1, now=NOW),
    )
    refused(
        db,
        UnknownRecord,
        "no consumable 'oil'",
        lambda: consumables.update_consumable(db, "oil", name="Oil", now=NOW),
    )
    refused(
        db,
        InvalidEntry,
        "nothing to change",
        lambda: consumables.update_consumable(db, "pla", name="Filament PLA", now=NOW),
    )


def test_sales_are_recorded_and_refused(db: Session, books: Books) -> None:
    w = books.workshop
    consumables.add_consumable(db, "pla", "Filament PLA", "g", Rate(3), now=NOW)
    db.commit()

    def sell(**given: Any) -> Callable[[], Any]:
        args: dict[str, Any] = {"consumable": "pla", "quantity": 40, "member_id": w.alice, "machine": "printer-1",
                "sold_at": NOW - timedelta(hours=1), "now": NOW} | given  # fmt: skip
        return lambda: consumables.record_sale(db, **args)

    sale = sell(sale_id="gw-1")()
    by_badge = sell(member_id=None, badge=w.alice_badge.lower(), quantity=5)()
    db.commit()
    assert (sale.member_id, sale.amount_cents, sale.billed_in, sale.adjustment_for) == (
        w.alice,
        120,
        APRIL,
        None,
    )
    assert (by_badge.member_id, by_badge.quantity) == (w.alice, 5)
    refused(db, AlreadyRecorded, "recorded already", sell(sale_id="gw-1"))
    refused(db, UnknownRecord, "no member 999", sell(member_id=999))
    refused(db, UnknownRecord, "no badge 0000FFFF", sell(member_id=None, badge="0000ffff"))
    refused(db, InvalidEntry, "not 4 to 32 hex", sell(member_id=None, badge="xyz"))
    refused(db, InvalidEntry, "disabled", sell(member_id=None, badge=w.dave_badge))
    refused(db, InvalidEntry, "one of them", sell(badge=w.bob_badge))
    refused(db, InvalidEntry, "one of them", sell(member_id=None))
    refused(db, UnknownRecord, "no consumable 'abs'", sell(consumable="abs"))
    refused(db, UnknownRecord, "no machine 'printer-9'", sell(machine="printer-9"))
    refused(db, InvalidAmount, "positive whole number of g, not 0", sell(quantity=0))
    refused(db, InvalidAmount, "not -3", sell(quantity=-3))
    refused(db, InvalidPeriod, "needs a time zone", sell(sold_at=datetime(2026, 4, 1, 10)))
    refused(db, InvalidEntry, "in the future", sell(sold_at=NOW + timedelta(minutes=1)))
    refused(db, InvalidEntry, "a sale id", sell(sale_id="two words"))


def test_sales_become_invoice_lines_and_late_ones_adjustments(db: Session, books: Books) -> None:
    w = books.workshop
    consumables.add_consumable(db, "pla", "Filament PLA", "g", Rate(3), vat_rate_bp=0, now=NOW)
    add_session(db, w.alice, "printer-1", at(date(2026, 3, 4)), 30)
    for grams in (40, 25):  # one line per member, machine, day and product: 65 g
        consumables.record_sale(
            db, consumable="pla", quantity=grams, member_id=w.alice, machine="printer-1",
            sold_at=at(date(2026, 3, 4), 11), now=NOW,
        )  # fmt: skip
    consumables.record_sale(
        db, consumable="pla", quantity=10, member_id=books.employee, sold_at=at(date(2026, 3, 9)), now=NOW
    )  # the organisation pays for its employee's filament
    db.commit()
    close_month(db, MARCH, date(2026, 4, 2))
    db.commit()
    lines = db.execute(
        sa.select(
            InvoiceRow.payer_kind, InvoiceLineRow.item, InvoiceLineRow.quantity, InvoiceLineRow.amount_cents
        )
        .join(InvoiceRow, InvoiceRow.id == InvoiceLineRow.invoice_id)
        .where(InvoiceLineRow.kind == "consumable")
        .order_by(InvoiceLineRow.id)
    ).all()
    assert [tuple(line) for line in lines] == [
        ("member", "Filament PLA", 65, 195),
        ("organisation", "Filament PLA", 10, 30),
    ]
    assert all(s.invoice is not None for s in consumables.sales(db, period=MARCH))

    late = consumables.record_sale(
        db, consumable="pla", quantity=20, member_id=w.alice, machine="printer-1", sold_at=at(date(2026, 3, 30)),
        now=NOW,
    )  # fmt: skip
    db.commit()
    assert (late.billed_in, late.adjustment_for) == (APRIL, MARCH)
    close_month(db, APRIL, date(2026, 5, 2))
    db.commit()
    line = db.execute(
        sa.select(InvoiceRow.period, InvoiceLineRow.quantity, InvoiceLineRow.adjustment_for)
        .join(InvoiceRow, InvoiceRow.id == InvoiceLineRow.invoice_id)
        .where(InvoiceLineRow.kind == "consumable", InvoiceRow.period == "2026-04")
    ).one()
    assert tuple(line) == ("2026-04", 20, "2026-03")  # a closed month never changes
    listed = consumables.sales(db, member_id=w.alice)
    assert [(s.quantity, s.billed_in, s.adjustment_for) for s in listed] == [
        (40, MARCH, None), (25, MARCH, None), (20, APRIL, MARCH),
    ]  # fmt: skip
    assert consumables.sales(db, period=APRIL) == []  # by the month sold in

"""Consumables (thread, filament by the gram) and their sales at the machines.

A **consumable** is sold by the gram, the metre or the piece at a price per unit; its
price can change, and the new one applies to every sale not invoiced yet (the close reads
the catalogue as it stands). A **sale** names the member (or the badge they tapped), the
consumable, a whole quantity of its unit, when, and usually the machine. The month close
makes it a line of the payer's invoice (the member's, or their organisation's), one per
member, machine, day and product. A sale of a month already closed is recorded all the
same and, as a late session would be, billed at the next close as an adjustment naming its
own month: a closed month never changes.

Like :mod:`server.billing.catalogue`, each step checks first, is audited, flushes and
leaves the commit to the caller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.audit import audit
from server.billing.catalogue import (
    AlreadyRecorded,
    InvalidEntry,
    check_code,
    check_name,
    check_vat,
    get_machine,
    get_member,
)
from server.billing.close import billing_period_of
from server.billing.errors import InvalidAmount, InvalidPeriod
from server.billing.lines import Unit
from server.billing.money import Rate
from server.billing.monthly import closed_periods
from server.billing.periods import Period, workshop_day
from server.billing.prices import DEFAULT_VAT_BP
from server.billing.store import UnknownRecord
from server.models import Badge, ConsumableRow, ConsumableSaleRow, InvoiceRow, Machine, Member, SaleCharge
from server.models.badge import normalise_uid

UNITS = {
    "g": Unit.GRAM, "gram": Unit.GRAM, "grams": Unit.GRAM, "gramme": Unit.GRAM,
    "m": Unit.METRE, "metre": Unit.METRE, "metres": Unit.METRE, "meter": Unit.METRE, "meters": Unit.METRE,
    "piece": Unit.PIECE, "pieces": Unit.PIECE, "pc": Unit.PIECE,
}  # fmt: skip
"""What a consumable is sold by: the gram, the metre or the piece."""


def parse_unit(text: str) -> Unit:
    unit = UNITS.get(text.strip().lower())
    if unit is None:
        raise InvalidEntry(f"a consumable is sold by the gram, the metre or the piece, not {text!r}")
    return unit


def add_consumable(
    db: Session,
    code: str,
    name: str,
    unit: str,
    price: Rate,
    *,
    vat_rate_bp: int = DEFAULT_VAT_BP,
    now: datetime,
    by: int | None = None,
) -> ConsumableRow:
    """A product sold at the machines: ``price`` per unit (``Rate(5, 2)`` is 0.025 € a gram)."""
    check_code(code, "consumable")
    name = check_name(name, "consumable")
    sold_by = parse_unit(unit)
    check_vat(vat_rate_bp)
    if db.scalar(sa.select(ConsumableRow.id).where(ConsumableRow.code == code)) is not None:
        raise AlreadyRecorded(f"consumable {code!r} exists already")
    row = ConsumableRow(
        code=code, name=name, unit=str(sold_by), unit_cents=price.cents, unit_per=price.per,
        vat_rate_bp=vat_rate_bp,
    )  # fmt: skip
    db.add(row)
    db.flush()
    audit(
        db, "consumable.add", "consumable", code, actor_id=by, at=now,
        details={"name": name, "unit": str(sold_by), "unit_cents": price.cents, "unit_per": price.per,
                 "vat_rate_bp": vat_rate_bp},
    )  # fmt: skip
    return row


def get_consumable(db: Session, code: str) -> ConsumableRow:
    found = db.scalars(sa.select(ConsumableRow).where(ConsumableRow.code == code)).first()
    if found is None:
        raise UnknownRecord(f"no consumable {code!r}")
    return found


def update_consumable(
    db: Session,
    code: str,
    *,
    name: str | None = None,
    price: Rate | None = None,
    vat_rate_bp: int | None = None,
    now: datetime,
    by: int | None = None,
) -> ConsumableRow:
    """Rename or reprice a consumable: the new price applies to every sale not yet invoiced."""
    row = get_consumable(db, code)
    before = (row.name, row.unit_cents, row.unit_per, row.vat_rate_bp)
    after = (
        check_name(name, "consumable") if name is not None else row.name,
        price.cents if price is not None else row.unit_cents,
        price.per if price is not None else row.unit_per,
        check_vat(vat_rate_bp) if vat_rate_bp is not None else row.vat_rate_bp,
    )
    if after == before:
        raise InvalidEntry(f"nothing to change on consumable {code!r}")
    row.name, row.unit_cents, row.unit_per, row.vat_rate_bp = after
    db.flush()
    audit(
        db, "consumable.update", "consumable", code, actor_id=by, at=now,
        details={"before": list(before), "after": list(after)},
    )  # fmt: skip
    return row


def consumables(db: Session) -> list[ConsumableRow]:
    return list(db.scalars(sa.select(ConsumableRow).order_by(ConsumableRow.code)))


# --- sales ----------------------------------------------------------------------------------------

SALE_ID_LENGTH = 64


@dataclass(frozen=True)
class Sale:
    """A sale as recorded, and where it is (or will be) invoiced."""

    sale_id: str
    sold_at: datetime
    member_id: int
    member_name: str
    machine: str | None
    consumable: str
    consumable_name: str
    unit: str
    quantity: int
    amount_cents: int
    """At the consumable's current price, this sale alone (an invoice line sums a day's sales, then rounds)."""
    billed_in: Period
    """The month whose close invoices it: its own, or the first open one for a sale of a closed month."""
    adjustment_for: Period | None
    """Its own month, when that month was closed before the sale was recorded."""
    invoice: str | None
    """The invoice it is on, once invoiced."""


def _member_of(db: Session, member_id: int | None, badge: str | None) -> Member:
    if (member_id is None) == (badge is None):
        raise InvalidEntry("name the member who bought it, or the badge they tapped: one of them")
    if member_id is not None:
        return get_member(db, member_id)
    try:
        uid = normalise_uid(badge or "")
    except ValueError as error:
        raise InvalidEntry(str(error)) from None
    found = db.scalars(sa.select(Badge).where(Badge.uid == uid)).first()
    if found is None:
        raise UnknownRecord(f"no badge {uid}")
    if not found.active:
        raise InvalidEntry(f"badge {uid} is disabled: record the sale for its member by their id")
    return get_member(db, found.member_id)


def record_sale(
    db: Session,
    *,
    consumable: str,
    quantity: int,
    sold_at: datetime,
    member_id: int | None = None,
    badge: str | None = None,
    machine: str | None = None,
    sale_id: str | None = None,
    now: datetime,
    by: int | None = None,
) -> Sale:
    """Record a sale; refused, with nothing saved, if anything named is unknown or a value is wrong."""
    member = _member_of(db, member_id, badge)
    product = get_consumable(db, consumable)
    machine_row = get_machine(db, machine) if machine is not None else None
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidAmount(f"a sale is a positive whole number of {product.unit}, not {quantity}")
    if sold_at.utcoffset() is None:
        raise InvalidPeriod(f"the time of a sale needs a time zone: {sold_at.isoformat()}")
    if sold_at > now:
        raise InvalidEntry(f"a sale at {sold_at.isoformat()} is in the future")
    if sale_id is None:
        sale_id = f"sale-{uuid.uuid4().hex}"
    elif not sale_id.strip() or len(sale_id) > SALE_ID_LENGTH or any(c.isspace() for c in sale_id):
        raise InvalidEntry(f"a sale id is 1 to {SALE_ID_LENGTH} characters without spaces, not {sale_id!r}")
    if db.scalar(sa.select(ConsumableSaleRow.id).where(ConsumableSaleRow.sale_id == sale_id)) is not None:
        raise AlreadyRecorded(f"sale {sale_id!r} is recorded already")
    row = ConsumableSaleRow(
        sale_id=sale_id,
        member_id=member.id,
        machine_id=machine_row.id if machine_row else None,
        consumable_id=product.id,
        quantity=quantity,
        sold_at=sold_at,
    )
    db.add(row)
    db.flush()
    closed = closed_periods(db)
    sale = _sale_of(row, member.name, machine, product, closed)
    audit(
        db, "consumable_sale.add", "consumable_sale", sale_id, actor_id=by, at=now,
        details={"member_id": member.id, "consumable": product.code, "quantity": quantity,
                 "machine": machine, "sold_at": sold_at, "billed_in": str(sale.billed_in)},
    )  # fmt: skip
    return sale


def _sale_of(
    row: ConsumableSaleRow,
    member_name: str,
    machine: str | None,
    product: ConsumableRow,
    closed: list[Period],
    *,
    charged_in: str | None = None,
    invoice: str | None = None,
) -> Sale:
    own = Period.of(workshop_day(row.sold_at))
    billed_in = Period.parse(charged_in) if charged_in else billing_period_of(own.first_day, closed)
    return Sale(
        sale_id=row.sale_id,
        sold_at=row.sold_at,
        member_id=row.member_id,
        member_name=member_name,
        machine=machine,
        consumable=product.code,
        consumable_name=product.name,
        unit=product.unit,
        quantity=row.quantity,
        amount_cents=Rate(product.unit_cents, product.unit_per).amount(row.quantity),
        billed_in=billed_in,
        adjustment_for=own if billed_in != own else None,
        invoice=invoice,
    )


def sales(
    db: Session,
    *,
    period: Period | None = None,
    member_id: int | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[Sale]:
    """Sales in order of time, of one month (by the day they were made) and one member if given."""
    closed = closed_periods(db)
    query = (
        sa.select(
            ConsumableSaleRow, Member.name, Machine.slug, ConsumableRow, InvoiceRow.number, SaleCharge.period
        )
        .join(Member, Member.id == ConsumableSaleRow.member_id)
        .join(ConsumableRow, ConsumableRow.id == ConsumableSaleRow.consumable_id)
        .outerjoin(Machine, Machine.id == ConsumableSaleRow.machine_id)
        .outerjoin(SaleCharge, SaleCharge.consumable_sale_id == ConsumableSaleRow.id)
        .outerjoin(InvoiceRow, InvoiceRow.id == SaleCharge.invoice_id)
        .order_by(ConsumableSaleRow.sold_at, ConsumableSaleRow.id)
        .limit(limit)
        .offset(offset)
    )
    if period is not None:
        start, end = period.bounds()
        query = query.where(ConsumableSaleRow.sold_at >= start, ConsumableSaleRow.sold_at < end)
    if member_id is not None:
        get_member(db, member_id)
        query = query.where(ConsumableSaleRow.member_id == member_id)
    return [
        _sale_of(row, member_name, slug, product, closed, charged_in=charged_in, invoice=number)
        for row, member_name, slug, product, number, charged_in in db.execute(query)
    ]

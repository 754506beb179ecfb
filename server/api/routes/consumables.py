"""Consumables (thread, filament by the gram) and their sales at the machines.

Every member sees the consumables and their prices; the treasurer sets them; the treasurer
or a manager records sales and reads them. Every change is in the audit trail. A sale is invoiced at the close of its
month; one of a month already closed is billed at the next close, as an adjustment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from protocol.ids import ID_PATTERN
from server.api.deps import ClockDep, PageDep, SessionDep
from server.api.routes.members import HexUid
from server.auth.policy import BillingRead, BillingWrite, SignedIn, TreasurerWrite
from server.billing import catalogue, consumables
from server.billing.consumables import SALE_ID_LENGTH, Sale, record_sale, sales
from server.billing.money import Rate
from server.billing.periods import Period
from server.billing.prices import DEFAULT_VAT_BP
from server.ids import Ident
from server.models import ConsumableRow

router = APIRouter(tags=["consumables"])

PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
Code = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=catalogue.CODE_LENGTH)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
VatBp = Annotated[int, Field(ge=0, le=10_000, description="basis points: 20 % is 2000")]


class ConsumableIn(BaseModel):
    """``unit_cents`` for ``unit_per`` units: 3 per 1 is 0.03 € a gram, 2500 per 1000 is 25 € a kilogram."""

    model_config = ConfigDict(extra="forbid")

    code: Code
    name: Name
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=8)]
    """``gram`` (``g``), ``metre`` (``m``) or ``piece``."""
    unit_cents: Annotated[int, Field(ge=0)]
    unit_per: Annotated[int, Field(ge=1)] = 1
    vat_rate_bp: VatBp = DEFAULT_VAT_BP


class ConsumablePatch(BaseModel):
    """A new price applies to every sale not invoiced yet."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    unit_cents: Annotated[int, Field(ge=0)] | None = None
    unit_per: Annotated[int, Field(ge=1)] | None = None
    vat_rate_bp: VatBp | None = None


class ConsumableOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    unit: str
    unit_cents: int
    unit_per: int
    vat_rate_bp: int


class SaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consumable: Code
    quantity: Annotated[int, Field(gt=0, description="whole units of the consumable: grams, metres, pieces")]
    member_id: int | None = None
    badge: HexUid | None = None
    """The badge the member tapped, instead of ``member_id``."""
    machine: Ident | None = None
    sold_at: AwareDatetime | None = None
    """Default: now."""
    sale_id: Annotated[str, StringConstraints(min_length=1, max_length=SALE_ID_LENGTH)] | None = None
    """A unique id, so that a retried request is refused (409) rather than counted twice."""


class SaleOut(BaseModel):
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
    """This sale alone at the current price; the invoice line sums the day's sales, then rounds."""
    billed_in: str
    """The month whose close invoices it."""
    adjustment_for: str | None
    """Its own month when that was closed before it was recorded: an adjustment line then."""
    invoice: str | None

    @classmethod
    def of(cls, sale: Sale) -> SaleOut:
        return cls(
            sale_id=sale.sale_id,
            sold_at=sale.sold_at,
            member_id=sale.member_id,
            member_name=sale.member_name,
            machine=sale.machine,
            consumable=sale.consumable,
            consumable_name=sale.consumable_name,
            unit=sale.unit,
            quantity=sale.quantity,
            amount_cents=sale.amount_cents,
            billed_in=str(sale.billed_in),
            adjustment_for=str(sale.adjustment_for) if sale.adjustment_for else None,
            invoice=sale.invoice,
        )


@router.get("/consumables")
def list_consumables(caller: SignedIn, db: SessionDep) -> list[ConsumableOut]:
    return [ConsumableOut.model_validate(row) for row in consumables.consumables(db)]


@router.post("/consumables", status_code=status.HTTP_201_CREATED)
def add_consumable(
    body: ConsumableIn, caller: TreasurerWrite, db: SessionDep, clock: ClockDep
) -> ConsumableOut:
    row = consumables.add_consumable(
        db, body.code, body.name, body.unit, Rate(body.unit_cents, body.unit_per),
        vat_rate_bp=body.vat_rate_bp, now=clock(), by=caller.id,
    )  # fmt: skip
    db.commit()
    return ConsumableOut.model_validate(row)


@router.patch("/consumables/{code}")
def update_consumable(
    code: Annotated[str, Path(pattern=ID_PATTERN, max_length=catalogue.CODE_LENGTH)],
    body: ConsumablePatch,
    caller: TreasurerWrite,
    db: SessionDep,
    clock: ClockDep,
) -> ConsumableOut:
    """Rename or reprice it; the price is ``unit_cents`` (and ``unit_per``, default 1) together."""
    price = None
    if body.unit_cents is not None:
        price = Rate(body.unit_cents, body.unit_per or 1)
    elif body.unit_per is not None:
        raise catalogue.InvalidEntry("a new unit_per goes with its unit_cents")
    row: ConsumableRow = consumables.update_consumable(
        db, code, name=body.name, price=price, vat_rate_bp=body.vat_rate_bp, now=clock(), by=caller.id
    )
    db.commit()
    return ConsumableOut.model_validate(row)


@router.get("/consumable-sales")
def list_sales(
    *,
    caller: BillingRead,
    db: SessionDep,
    page: PageDep,
    period: Annotated[str | None, Query(pattern=PERIOD, description="YYYY-MM, the month sold in")] = None,
    member: int | None = None,
) -> list[SaleOut]:
    """Sales in order of time, each with the month it is billed in and its invoice once invoiced."""
    found = sales(
        db, period=Period.parse(period) if period else None, member_id=member, limit=page.limit,
        offset=page.offset,
    )  # fmt: skip
    return [SaleOut.of(sale) for sale in found]


@router.post("/consumable-sales", status_code=status.HTTP_201_CREATED)
def add_sale(body: SaleIn, caller: BillingWrite, db: SessionDep, clock: ClockDep) -> SaleOut:
    """Record a sale at a machine, for a member or the badge they tapped.

    404: unknown member, badge, consumable or machine; 409: the sale id is recorded already;
    422: a disabled badge, a sale in the future, both or neither of member and badge.
    """
    now = clock()
    sale = record_sale(
        db, consumable=body.consumable, quantity=body.quantity, sold_at=body.sold_at or now,
        member_id=body.member_id, badge=body.badge, machine=body.machine, sale_id=body.sale_id, now=now,
        by=caller.id,
    )  # fmt: skip
    db.commit()
    return SaleOut.of(sale)

"""Price lists and their versions, plans and who is on them: what the treasurer sets.

Every member sees the price lists and plans; the treasurer changes them; who is on which
plan is for the treasurer and managers. Every change is in the audit trail. A refusal changes nothing and says why:
404 for an unknown list, machine, class, plan or member; 409 for a price overlapping
another, a code that exists, a closed month; 422 for a value that cannot be right.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from protocol.ids import ID_PATTERN
from server.api.deps import ClockDep, SessionDep
from server.auth.policy import BillingRead, SignedIn, TreasurerWrite
from server.billing import catalogue
from server.billing.money import MinuteRounding, Rate
from server.billing.periods import Period
from server.billing.prices import DEFAULT_VAT_BP, PriceVersion
from server.ids import Ident
from server.models import MemberPlan, PlanRow

router = APIRouter(tags=["prices"])

PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
Code = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=catalogue.CODE_LENGTH)]
CodePath = Annotated[str, Path(pattern=ID_PATTERN, max_length=catalogue.CODE_LENGTH, description="its code")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Month = Annotated[str, StringConstraints(pattern=PERIOD)]
MachineClass = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Cents = Annotated[int, Field(ge=0)]
Per = Annotated[int, Field(ge=1)]
VatBp = Annotated[int, Field(ge=0, le=10_000, description="basis points: 20 % is 2000")]


class PriceListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    """e.g. ``standard``, ``member`` (partners' prices), or an organisation's own."""
    name: Name


class PriceListOut(BaseModel):
    code: str
    name: str
    versions: int


class PriceVersionIn(BaseModel):
    """A price from ``valid_from``; a rate is ``cents`` for ``per`` minutes (600 per 60 is 6.00 €/h)."""

    model_config = ConfigDict(extra="forbid")

    machine: Ident | None = None
    """A machine's id, or else ``machine_class``: one of them."""
    machine_class: MachineClass | None = None
    valid_from: date
    valid_until: date | None = None
    """The first day it no longer applies; otherwise until the next version starts."""
    running_cents: Cents
    running_per: Per = 1
    idle_cents: Cents = 0
    idle_per: Per = 1
    session_fee_cents: Cents = 0
    minimum_charge_cents: Cents = 0
    increment_minutes: Annotated[int, Field(ge=1, le=1440)] = 1
    rounding: MinuteRounding = MinuteRounding.UP
    grace_minutes: Annotated[int, Field(ge=0, le=1440)] = 0
    daily_cap_cents: Cents | None = None
    vat_rate_bp: VatBp = DEFAULT_VAT_BP
    code: Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=64)] | None = None
    """Its id on invoice lines; made from the list, machine or class and day if not given."""


class PriceVersionOut(BaseModel):
    code: str
    price_list: str
    machine: str | None
    machine_class: str | None
    valid_from: date
    valid_until: date | None
    running_cents: int
    running_per: int
    idle_cents: int
    idle_per: int
    session_fee_cents: int
    minimum_charge_cents: int
    increment_minutes: int
    rounding: MinuteRounding
    grace_minutes: int
    daily_cap_cents: int | None
    vat_rate_bp: int

    @classmethod
    def of(cls, version: PriceVersion) -> PriceVersionOut:
        return cls(
            code=version.id,
            price_list=version.price_list,
            machine=version.machine,
            machine_class=version.machine_class,
            valid_from=version.valid_from,
            valid_until=version.valid_until,
            running_cents=version.running_rate.cents,
            running_per=version.running_rate.per,
            idle_cents=version.idle_rate.cents,
            idle_per=version.idle_rate.per,
            session_fee_cents=version.session_fee_cents,
            minimum_charge_cents=version.minimum_charge_cents,
            increment_minutes=version.increment_minutes,
            rounding=version.rounding,
            grace_minutes=version.grace_minutes,
            daily_cap_cents=version.daily_cap_cents,
            vat_rate_bp=version.vat_rate_bp,
        )


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    name: Name
    monthly_fee_cents: Cents
    included_minutes: dict[MachineClass, Annotated[int, Field(ge=1)]] = {}
    """Minutes of running time included each month, per machine class."""
    vat_rate_bp: VatBp = DEFAULT_VAT_BP


class PlanOut(BaseModel):
    code: str
    name: str
    monthly_fee_cents: int
    included_minutes: dict[str, int]
    vat_rate_bp: int

    @classmethod
    def of(cls, row: PlanRow) -> PlanOut:
        return cls(
            code=row.code,
            name=row.name,
            monthly_fee_cents=row.monthly_fee_cents,
            included_minutes={m.machine_class: m.minutes for m in row.included},
            vat_rate_bp=row.vat_rate_bp,
        )


class PlanSubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: int
    plan: Code | None
    """The plan's code; null: no plan any more from ``from_month``."""
    from_month: Month
    until_month: Month | None = None
    """The last month on the plan, included; none: until another choice."""


class PlanSubscriptionOut(BaseModel):
    member_id: int
    plan: str | None
    valid_from: date

    @classmethod
    def of(cls, row: MemberPlan, plan: str | None) -> PlanSubscriptionOut:
        return cls(member_id=row.member_id, plan=plan, valid_from=row.valid_from)


@router.get("/price-lists")
def list_price_lists(caller: SignedIn, db: SessionDep) -> list[PriceListOut]:
    return [
        PriceListOut(code=row.code, name=row.name, versions=count) for row, count in catalogue.price_lists(db)
    ]


@router.post("/price-lists", status_code=status.HTTP_201_CREATED)
def add_price_list(
    body: PriceListIn, caller: TreasurerWrite, db: SessionDep, clock: ClockDep
) -> PriceListOut:
    """A new, empty price list; 409 if the code is taken."""
    row = catalogue.add_price_list(db, body.code, body.name, now=clock(), by=caller.id)
    db.commit()
    return PriceListOut(code=row.code, name=row.name, versions=0)


@router.get("/price-lists/{code}/versions")
def list_price_versions(code: CodePath, caller: SignedIn, db: SessionDep) -> list[PriceVersionOut]:
    """The list's versions, by machine or class, then start day."""
    return [PriceVersionOut.of(v) for v in catalogue.price_versions(db, code)]


@router.post("/price-lists/{code}/versions", status_code=status.HTTP_201_CREATED)
def add_price_version(
    code: CodePath, body: PriceVersionIn, caller: TreasurerWrite, db: SessionDep, clock: ClockDep
) -> PriceVersionOut:
    """A new version of the list's price for a machine or a class, from a day.

    409: it would be valid on a day another version for the same machine or class is
    (same start, or an end past the next start), it starts in a closed month, or its code is taken.
    """
    terms = catalogue.PriceTerms(
        running=Rate(body.running_cents, body.running_per),
        idle=Rate(body.idle_cents, body.idle_per),
        session_fee_cents=body.session_fee_cents,
        minimum_charge_cents=body.minimum_charge_cents,
        increment_minutes=body.increment_minutes,
        rounding=body.rounding,
        grace_minutes=body.grace_minutes,
        daily_cap_cents=body.daily_cap_cents,
        vat_rate_bp=body.vat_rate_bp,
    )
    version = catalogue.add_version(
        db, code, terms, valid_from=body.valid_from, valid_until=body.valid_until, machine=body.machine,
        machine_class=body.machine_class, code=body.code, now=clock(), by=caller.id,
    )  # fmt: skip
    db.commit()
    return PriceVersionOut.of(version)


@router.get("/price-lists/{code}/applicable")
def applicable_price_version(
    *,
    code: CodePath,
    caller: SignedIn,
    db: SessionDep,
    on: Annotated[date, Query(description="the day, YYYY-MM-DD")],
    machine: Ident | None = None,
    machine_class: Annotated[str | None, Query(max_length=40)] = None,
) -> PriceVersionOut:
    """The version a session started on ``on`` pays, on ``machine`` (its own price, else its
    class's) or on any machine of ``machine_class``; 404 if none applies."""
    return PriceVersionOut.of(
        catalogue.version_on(db, code, on, machine=machine, machine_class=machine_class)
    )


@router.get("/plans")
def list_plans(caller: SignedIn, db: SessionDep) -> list[PlanOut]:
    return [PlanOut.of(row) for row in catalogue.plans(db)]


@router.post("/plans", status_code=status.HTTP_201_CREATED)
def add_plan(body: PlanIn, caller: TreasurerWrite, db: SessionDep, clock: ClockDep) -> PlanOut:
    row = catalogue.add_plan(
        db, body.code, body.name, body.monthly_fee_cents, body.included_minutes, vat_rate_bp=body.vat_rate_bp,
        now=clock(), by=caller.id,
    )  # fmt: skip
    db.commit()
    return PlanOut.of(row)


@router.get("/plan-subscriptions")
def list_plan_subscriptions(
    caller: BillingRead, db: SessionDep, member: int | None = None
) -> list[PlanSubscriptionOut]:
    """Every member's plan choices (or one member's), each from the first of a month."""
    return [PlanSubscriptionOut.of(row, plan) for row, plan in catalogue.member_plans(db, member)]


@router.post("/plan-subscriptions", status_code=status.HTTP_201_CREATED)
def subscribe_to_plan(
    body: PlanSubscriptionIn, caller: TreasurerWrite, db: SessionDep, clock: ClockDep
) -> list[PlanSubscriptionOut]:
    """Put a member on a plan from a month (to a month), or on none (``plan``: null).

    409: the member already has a choice from that month (choices are history), or the month is closed.
    """
    rows = catalogue.set_member_plan(
        db, body.member_id, body.plan, Period.parse(body.from_month),
        Period.parse(body.until_month) if body.until_month else None, now=clock(), by=caller.id,
    )  # fmt: skip
    db.commit()
    return [PlanSubscriptionOut.of(row, body.plan if row.plan_id is not None else None) for row in rows]

"""Price lists and their versions, plans and who is on them: what the treasurer sets.

Through :mod:`server.billing.catalogue`, as ``/api/v1/price-lists``, ``/plans`` and
``/plan-subscriptions`` do: everyone reads prices over the API; here the treasurer and
managers read them, and only the treasurer changes them.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from server.api.deps import ClockDep, SessionDep
from server.billing import catalogue
from server.billing.errors import InvalidAmount
from server.billing.money import FREE, MinuteRounding, Rate, parse_rate
from server.billing.periods import Period, workshop_day
from server.billing.prices import DEFAULT_VAT_BP
from server.models import Machine, Member
from server.web import forms
from server.web.render import render
from server.web.session import BillingUser, TreasurerUser

router = APIRouter(prefix="/billing", include_in_schema=False)


def hourly(value: str, *, required: bool = False) -> Rate:
    """A rate typed in euros per hour (``6,00``) as the per-minute :class:`Rate` billing uses."""
    if not value.strip():
        if required:
            raise forms.BadField("error.missing_field")
        return FREE
    try:
        return parse_rate(value.strip(), 60)
    except InvalidAmount:
        raise forms.BadField("error.invalid_amount") from None


def vat_bp(value: str) -> int:
    """A VAT rate typed in percent (``20``, ``5,5``) in basis points."""
    return forms.cents(value) if value.strip() else DEFAULT_VAT_BP


@router.get("/prices", response_class=HTMLResponse)
def prices_page(request: Request, caller: BillingUser, db: SessionDep, clock: ClockDep) -> HTMLResponse:
    context = {
        "lists": catalogue.price_lists(db),
        "versions": catalogue.price_versions(db),
        "machines": list(db.scalars(sa.select(Machine).order_by(Machine.name))),
        "classes": sorted(catalogue.machine_classes(db)),
        "plans": catalogue.plans(db),
        "subscriptions": catalogue.member_plans(db),
        "member_names": dict(db.execute(sa.select(Member.id, Member.name)).all()),
        "members": list(
            db.scalars(sa.select(Member).where(Member.erased_at.is_(None)).order_by(Member.name))
        ),
        "roundings": list(MinuteRounding),
        "today": workshop_day(clock()),
        "next_month": str(Period.of(workshop_day(clock())).next()),
    }
    return render(request, "billing/prices.html", context, caller=caller, db=db, clock=clock)


@router.post("/price-lists")
def add_price_list(
    *,
    caller: TreasurerUser,
    db: SessionDep,
    clock: ClockDep,
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    def act() -> dict[str, object]:
        row = catalogue.add_price_list(
            db, forms.text(code, limit=40), forms.text(name, limit=120), now=clock(), by=caller.id
        )
        return {"code": row.code}

    return forms.attempt(db, act, back="/billing/prices", ok="flash.price_list")


@router.post("/price-versions")
def add_price_version(
    *,
    caller: TreasurerUser,
    db: SessionDep,
    clock: ClockDep,
    price_list: Annotated[str, Form()] = "",
    target: Annotated[str, Form()] = "",
    valid_from: Annotated[str, Form()] = "",
    valid_until: Annotated[str, Form()] = "",
    running: Annotated[str, Form()] = "",
    idle: Annotated[str, Form()] = "",
    session_fee: Annotated[str, Form()] = "",
    minimum: Annotated[str, Form()] = "",
    increment: Annotated[str, Form()] = "1",
    rounding: Annotated[str, Form()] = MinuteRounding.UP.value,
    grace: Annotated[str, Form()] = "0",
    daily_cap: Annotated[str, Form()] = "",
    vat: Annotated[str, Form()] = "",
) -> Response:
    def act() -> dict[str, object]:
        kind, _, slug = target.partition(":")
        if kind not in ("machine", "class") or not slug:
            raise forms.BadField("error.missing_field")
        try:
            chosen_rounding = MinuteRounding(rounding)
        except ValueError:
            raise forms.BadField() from None
        terms = catalogue.PriceTerms(
            running=hourly(running, required=True), idle=hourly(idle),
            session_fee_cents=forms.optional_cents(session_fee) or 0,
            minimum_charge_cents=forms.optional_cents(minimum) or 0,
            increment_minutes=forms.number(increment or "1", minimum=1), rounding=chosen_rounding,
            grace_minutes=forms.number(grace or "0", minimum=0), daily_cap_cents=forms.optional_cents(daily_cap),
            vat_rate_bp=vat_bp(vat),
        )  # fmt: skip
        version = catalogue.add_version(
            db, forms.text(price_list, limit=40), terms, valid_from=forms.day(valid_from),
            valid_until=forms.optional_day(valid_until), machine=slug if kind == "machine" else None,
            machine_class=slug if kind == "class" else None, now=clock(), by=caller.id,
        )  # fmt: skip
        return {"code": version.id}

    return forms.attempt(db, act, back="/billing/prices", ok="flash.price_version")


@router.post("/plans")
def add_plan(
    *,
    caller: TreasurerUser,
    db: SessionDep,
    clock: ClockDep,
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    monthly_fee: Annotated[str, Form()] = "",
    machine_class: Annotated[str, Form()] = "",
    minutes: Annotated[str, Form()] = "",
    vat: Annotated[str, Form()] = "",
) -> Response:
    def act() -> dict[str, object]:
        included = {}
        if machine_class.strip():
            included[machine_class.strip()] = forms.number(minutes, minimum=1)
        row = catalogue.add_plan(
            db, forms.text(code, limit=40), forms.text(name, limit=120), forms.cents(monthly_fee), included,
            vat_rate_bp=vat_bp(vat), now=clock(), by=caller.id,
        )  # fmt: skip
        return {"code": row.code}

    return forms.attempt(db, act, back="/billing/prices#plans-heading", ok="flash.plan")


@router.post("/plan-subscriptions")
def subscribe(
    *,
    caller: TreasurerUser,
    db: SessionDep,
    clock: ClockDep,
    member_id: Annotated[str, Form()] = "",
    plan: Annotated[str, Form()] = "",
    from_month: Annotated[str, Form()] = "",
    until_month: Annotated[str, Form()] = "",
) -> Response:
    def act() -> None:
        try:
            first = Period.parse(from_month)
            last = Period.parse(until_month) if until_month.strip() else None
        except ValueError:
            raise forms.BadField("error.invalid_month") from None
        catalogue.set_member_plan(
            db,
            forms.number(member_id, minimum=1),
            plan.strip() or None,
            first,
            last,
            now=clock(),
            by=caller.id,
        )

    return forms.attempt(db, act, back="/billing/prices#subscriptions-heading", ok="flash.subscribed")

"""What the treasurer sets: price lists and their versions, plans and who is on them.

One function per thing a treasurer does, for the ``atelier billing ...`` commands and the
REST API alike. Each checks everything before it writes, so that a refusal (a
:class:`~server.billing.errors.BillingError` saying what is wrong) changes nothing; each
change is flushed with its :class:`~server.models.AuditEntry`, and the caller commits once.
Organisations and partners are in :mod:`server.billing.payers`, consumables and their
sales in :mod:`server.billing.consumables`; the checks they share are here.

A **closed month never changes**, and the catalogue keeps it so: a price version, or a
plan choice, starting in a closed month is refused (it would alter how that month's late
sessions are priced, and what its invoices were explained by).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from protocol.ids import is_valid_id
from server.audit import audit
from server.billing.errors import BillingError, InvalidAmount, InvalidPrice, PeriodClosed
from server.billing.money import FREE, MinuteRounding, Rate
from server.billing.monthly import closed_periods
from server.billing.periods import Period
from server.billing.prices import DEFAULT_VAT_BP, PriceBook, PriceVersion
from server.billing.store import UnknownRecord, add_price_version, price_books, price_version_of
from server.models import (
    Machine,
    Member,
    MemberPlan,
    PlanMinutes,
    PlanRow,
    PriceList,
    PriceVersionRow,
)

CODE_LENGTH = 40
"""Price lists, plans and consumables are named by a code of a-z, 0-9 and '-'."""


class AlreadyRecorded(BillingError, ValueError):
    """A code, sale id, plan change or attachment that exists already: recording it again would clash."""


class InvalidEntry(BillingError, ValueError):
    """A value that cannot be right: an empty name, a code with spaces, a quantity of nothing."""


# --- checks shared by every step ----------------------------------------------------------------


def check_code(code: str, what: str, length: int = CODE_LENGTH) -> str:
    if not is_valid_id(code) or len(code) > length:
        raise InvalidEntry(f"invalid {what} code {code!r}: use a-z, 0-9 and '-', 1 to {length} characters")
    return code


def check_name(name: str, what: str, length: int = 120) -> str:
    name = name.strip()
    if not name or len(name) > length:
        raise InvalidEntry(f"a {what} needs a name of 1 to {length} characters")
    return name


def check_not_negative(cents: int, what: str) -> int:
    if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
        raise InvalidAmount(f"{what} cannot be negative: {cents} cents")
    return cents


def check_vat(rate_bp: int) -> int:
    if isinstance(rate_bp, bool) or not isinstance(rate_bp, int) or not 0 <= rate_bp <= 10_000:
        raise InvalidAmount(f"a VAT rate is 0 to 100 %, not {rate_bp / 100} %")
    return rate_bp


def get_member(db: Session, member_id: int) -> Member:
    member = db.get(Member, member_id)
    if member is None:
        raise UnknownRecord(f"no member {member_id}")
    return member


def get_machine(db: Session, slug: str) -> Machine:
    machine = db.scalars(sa.select(Machine).where(Machine.slug == slug)).first()
    if machine is None:
        raise UnknownRecord(f"no machine {slug!r}")
    return machine


def get_price_list(db: Session, code: str) -> PriceList:
    found = db.scalars(sa.select(PriceList).where(PriceList.code == code)).first()
    if found is None:
        raise UnknownRecord(f"no price list {code!r}: add it first (atelier billing price-list add)")
    return found


def machine_classes(db: Session) -> set[str]:
    return set(db.scalars(sa.select(Machine.machine_class).distinct()))


def check_machine_class(db: Session, machine_class: str) -> str:
    """A class some machine has: a typo would otherwise only show at the close, as a missing price."""
    known = machine_classes(db)
    if machine_class not in known:
        raise UnknownRecord(f"no machine of class {machine_class!r} (classes: {', '.join(sorted(known))})")
    return machine_class


def last_closed(db: Session) -> Period | None:
    return max(closed_periods(db), default=None)


def check_open(db: Session, day: date, what: str) -> None:
    """Refuse ``what`` starting on ``day`` if that day's month is closed."""
    last = last_closed(db)
    if last is not None and day <= last.last_day:
        raise PeriodClosed(
            f"{what} falls in {Period.of(day)}, which is closed: a closed month never changes; "
            f"start it on {last.next().first_day.isoformat()} or later"
        )


# --- price lists and their versions ---------------------------------------------------------------


def add_price_list(db: Session, code: str, name: str, *, now: datetime, by: int | None = None) -> PriceList:
    check_code(code, "price list")
    name = check_name(name, "price list")
    if db.scalar(sa.select(PriceList.id).where(PriceList.code == code)) is not None:
        raise AlreadyRecorded(f"price list {code!r} exists already")
    row = PriceList(code=code, name=name)
    db.add(row)
    db.flush()
    audit(db, "price_list.add", "price_list", code, actor_id=by, at=now, details={"name": name})
    return row


def price_lists(db: Session) -> list[tuple[PriceList, int]]:
    """Every price list, by code, with how many versions it has."""
    counts = dict(
        db.execute(
            sa.select(PriceVersionRow.price_list_id, sa.func.count()).group_by(PriceVersionRow.price_list_id)
        ).all()
    )
    return [
        (row, int(counts.get(row.id, 0))) for row in db.scalars(sa.select(PriceList).order_by(PriceList.code))
    ]


@dataclass(frozen=True)
class PriceTerms:
    """What a price version charges (see docs/billing.md, "Prices"); rates are per minute."""

    running: Rate
    idle: Rate = FREE
    session_fee_cents: int = 0
    minimum_charge_cents: int = 0
    increment_minutes: int = 1
    rounding: MinuteRounding = MinuteRounding.UP
    grace_minutes: int = 0
    daily_cap_cents: int | None = None
    vat_rate_bp: int = DEFAULT_VAT_BP

    def check(self) -> None:
        check_not_negative(self.session_fee_cents, "a session fee")
        check_not_negative(self.minimum_charge_cents, "a minimum charge")
        if self.daily_cap_cents is not None:
            check_not_negative(self.daily_cap_cents, "a daily cap")
        if isinstance(self.grace_minutes, bool) or not 0 <= self.grace_minutes <= 24 * 60:
            raise InvalidPrice(f"grace is 0 to 1440 minutes, not {self.grace_minutes}")
        if isinstance(self.increment_minutes, bool) or not 1 <= self.increment_minutes <= 24 * 60:
            raise InvalidPrice(f"the increment is 1 to 1440 minutes, not {self.increment_minutes}")
        check_vat(self.vat_rate_bp)


def _free_version_code(db: Session, base: str) -> str:
    taken = set(db.scalars(sa.select(PriceVersionRow.code).where(PriceVersionRow.code.startswith(base))))
    code, n = base, 1
    while code in taken:
        n += 1
        code = f"{base}-{n}"
    return code


def add_version(
    db: Session,
    price_list: str,
    terms: PriceTerms,
    *,
    valid_from: date,
    machine: str | None = None,
    machine_class: str | None = None,
    valid_until: date | None = None,
    code: str | None = None,
    now: datetime,
    by: int | None = None,
) -> PriceVersion:
    """A new version of ``price_list`` for a machine (slug) or a machine class, from ``valid_from``.

    Refused, with nothing saved: an unknown list, machine or class, negative amounts, a start
    in a closed month, or a version valid on a day another one of the list and target is
    (:class:`~server.billing.errors.OverlappingPrices`, from :func:`server.billing.prices.check_no_overlap`).
    """
    get_price_list(db, price_list)
    if (machine is None) == (machine_class is None):
        raise InvalidPrice("a price is for one machine or for one machine class: name one of them")
    if machine is not None:
        get_machine(db, machine)
    else:
        check_machine_class(db, machine_class or "")
    terms.check()
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidPrice(f"a price ending on {valid_until} must start before it, not on {valid_from}")
    check_open(db, valid_from, f"a price from {valid_from.isoformat()}")
    target = machine or machine_class or ""
    if code is None:
        code = _free_version_code(db, f"{price_list}-{target}-{valid_from:%Y%m%d}"[:60])
    else:
        check_code(code, "price version", 64)
        if db.scalar(sa.select(PriceVersionRow.id).where(PriceVersionRow.code == code)) is not None:
            raise AlreadyRecorded(f"a price version {code!r} exists already")
    columns: dict[str, Any] = {
        "code": code,
        "machine": machine,
        "machine_class": machine_class if machine is None else None,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "running_cents": terms.running.cents,
        "running_per": terms.running.per,
        "idle_cents": terms.idle.cents,
        "idle_per": terms.idle.per,
        "session_fee_cents": terms.session_fee_cents,
        "minimum_charge_cents": terms.minimum_charge_cents,
        "increment_minutes": terms.increment_minutes,
        "rounding": str(terms.rounding),
        "grace_minutes": terms.grace_minutes,
        "daily_cap_cents": terms.daily_cap_cents,
        "vat_rate_bp": terms.vat_rate_bp,
    }
    row = add_price_version(db, price_list, **columns)  # refuses an overlap before it adds anything
    audit(
        db, "price_version.add", "price_version", code, actor_id=by, at=now,
        details={"price_list": price_list} | {k: v for k, v in columns.items() if k != "code"},
    )  # fmt: skip
    return price_version_of(row, price_list, machine)


def price_versions(db: Session, price_list: str | None = None) -> list[PriceVersion]:
    """The versions of one list (or of all): by list, classes then machines, then start day."""
    books = _books(db, price_list)
    found = [v for book in books.values() for v in book.versions]
    return sorted(found, key=lambda v: (v.price_list, v.target, v.valid_from))


def _books(db: Session, price_list: str | None) -> dict[str, PriceBook]:
    books = price_books(db)
    if price_list is None:
        return books
    get_price_list(db, price_list)
    return {price_list: books[price_list]}


def version_on(
    db: Session, price_list: str, day: date, *, machine: str | None = None, machine_class: str | None = None
) -> PriceVersion:
    """The version of ``price_list`` a session on ``machine`` (or any machine of a class) on ``day`` pays.

    A machine's own version wins over its class's; :class:`~server.billing.errors.NoPrice` if none applies.
    """
    if (machine is None) == (machine_class is None):
        raise InvalidPrice("name one machine or one machine class")
    book = _books(db, price_list)[price_list]
    if machine is not None:
        found = get_machine(db, machine)
        return book.version_for(found.slug, found.machine_class, day)
    # No machine has an empty slug: only the class's version can match.
    return book.version_for("", check_machine_class(db, machine_class or ""), day)


# --- plans, and who is on which ----------------------------------------------------------------------


def add_plan(
    db: Session,
    code: str,
    name: str,
    monthly_fee_cents: int,
    included_minutes: Mapping[str, int],
    *,
    vat_rate_bp: int = DEFAULT_VAT_BP,
    now: datetime,
    by: int | None = None,
) -> PlanRow:
    """A plan: a monthly fee, and minutes of running time included per machine class each month."""
    check_code(code, "plan")
    name = check_name(name, "plan")
    check_not_negative(monthly_fee_cents, "a plan's monthly fee")
    check_vat(vat_rate_bp)
    for machine_class, minutes in included_minutes.items():
        check_machine_class(db, machine_class)
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            raise InvalidPrice(
                f"included minutes are a positive whole number, not {minutes} ({machine_class})"
            )
    if db.scalar(sa.select(PlanRow.id).where(PlanRow.code == code)) is not None:
        raise AlreadyRecorded(f"plan {code!r} exists already")
    row = PlanRow(code=code, name=name, monthly_fee_cents=monthly_fee_cents, vat_rate_bp=vat_rate_bp)
    db.add(row)
    db.flush()
    for machine_class, minutes in sorted(included_minutes.items()):
        db.add(PlanMinutes(plan_id=row.id, machine_class=machine_class, minutes=minutes))
    db.flush()
    db.refresh(row)
    details = {
        "name": name,
        "monthly_fee_cents": monthly_fee_cents,
        "included_minutes": dict(included_minutes),
    }
    audit(db, "plan.add", "plan", code, actor_id=by, at=now, details=details | {"vat_rate_bp": vat_rate_bp})
    return row


def plans(db: Session) -> list[PlanRow]:
    return list(db.scalars(sa.select(PlanRow).options(selectinload(PlanRow.included)).order_by(PlanRow.code)))


def get_plan(db: Session, code: str) -> PlanRow:
    found = db.scalars(sa.select(PlanRow).where(PlanRow.code == code)).first()
    if found is None:
        raise UnknownRecord(f"no plan {code!r}")
    return found


def _plan_at(db: Session, member_id: int, day: date) -> int | None:
    """The member's plan id on ``day``: the latest choice made from on or before it."""
    return db.scalar(
        sa.select(MemberPlan.plan_id)
        .where(MemberPlan.member_id == member_id, MemberPlan.valid_from <= day)
        .order_by(MemberPlan.valid_from.desc())
        .limit(1)
    )


def set_member_plan(
    db: Session,
    member_id: int,
    plan: str | None,
    first_month: Period,
    last_month: Period | None = None,
    *,
    now: datetime,
    by: int | None = None,
) -> list[MemberPlan]:
    """Put a member on ``plan`` from ``first_month`` (to ``last_month`` included), or on no plan (None).

    Plan choices are history, only ever added: a month that already has a choice for this
    member, or a closed month, is refused.
    """
    member = get_member(db, member_id)
    plan_row = get_plan(db, plan) if plan is not None else None
    if last_month is not None:
        if plan_row is None:
            raise InvalidEntry("an end month goes with a plan; to stop a plan, choose no plan from a month")
        if last_month < first_month:
            raise InvalidEntry(f"a plan from {first_month} cannot end in {last_month}, before it starts")
    check_open(db, first_month.first_day, f"a plan change from {first_month}")
    if plan_row is None and _plan_at(db, member_id, first_month.first_day) is None:
        raise AlreadyRecorded(f"member {member_id} ({member.name}) has no plan in {first_month} to stop")
    changes = [(first_month.first_day, plan_row.id if plan_row else None)]
    if last_month is not None:
        changes.append((last_month.next().first_day, None))
    existing = set(
        db.scalars(
            sa.select(MemberPlan.valid_from).where(
                MemberPlan.member_id == member_id, MemberPlan.valid_from.in_([day for day, _ in changes])
            )
        )
    )
    if existing:
        month = Period.of(min(existing))
        raise AlreadyRecorded(
            f"member {member_id} ({member.name}) already has a plan change from {month}: plan choices "
            "are history and cannot be replaced"
        )
    rows = [MemberPlan(member_id=member_id, plan_id=plan_id, valid_from=day) for day, plan_id in changes]
    db.add_all(rows)
    db.flush()
    audit(
        db, "member.plan", "member", member_id, actor_id=by, at=now,
        details={"plan": plan, "from": str(first_month), "until": str(last_month) if last_month else None},
    )  # fmt: skip
    return rows


def member_plans(db: Session, member_id: int | None = None) -> list[tuple[MemberPlan, str | None]]:
    """Plan choices (and the plan's code, None for "no plan"), by member and start."""
    query = (
        sa.select(MemberPlan, PlanRow.code)
        .outerjoin(PlanRow, PlanRow.id == MemberPlan.plan_id)
        .order_by(MemberPlan.member_id, MemberPlan.valid_from)
    )
    if member_id is not None:
        get_member(db, member_id)
        query = query.where(MemberPlan.member_id == member_id)
    return [(row, code) for row, code in db.execute(query)]

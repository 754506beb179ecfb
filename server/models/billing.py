"""Billing's reference data: the association, price lists and versions, plans, organisations, consumables.

Price versions, plan choices, the association's settings and sales are only ever added
(``append_only``): a price change is a new version from a day, a plan change a new row
from a day, new settings a new row (the latest applies), so that a closed month can
always be explained by the rows it was closed with.
"""

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.clock import utc_now
from server.db import Base, BigPK, append_only


@append_only
class BillingSettings(Base):
    """The association as it issues invoices and collects direct debits; the latest row applies."""

    __tablename__ = "billing_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    name: Mapped[str] = mapped_column(String(140))
    address: Mapped[str] = mapped_column(Text, default="")
    """One line per line of the address."""
    siret: Mapped[str] = mapped_column(String(14))
    vat_exempt: Mapped[bool] = mapped_column(default=True)
    vat_number: Mapped[str] = mapped_column(String(20), default="")
    payment_terms: Mapped[str] = mapped_column(Text, default="")
    creditor_id: Mapped[str | None] = mapped_column(String(35))
    """The SEPA creditor identifier (ICS)."""
    iban: Mapped[str | None] = mapped_column(String(34))
    bic: Mapped[str | None] = mapped_column(String(11))
    due_days: Mapped[int] = mapped_column(default=15)
    minimum_balance_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    """Prepaid members below this balance are refused at the machine."""
    default_price_list: Mapped[str] = mapped_column(String(40), default="standard")
    partner_price_list: Mapped[str] = mapped_column(String(40), default="member")
    """The list members of partner associations pay (member prices)."""


class PriceList(Base):
    __tablename__ = "price_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))


@append_only
class PriceVersionRow(Base):
    """One :class:`server.billing.prices.PriceVersion`; rates are two integers (cents per units)."""

    __tablename__ = "price_versions"
    __table_args__ = (Index("ix_price_versions_price_list_id_valid_from", "price_list_id", "valid_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    price_list_id: Mapped[int] = mapped_column(ForeignKey("price_lists.id"))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"), index=True)
    machine_class: Mapped[str | None] = mapped_column(String(40))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    running_cents: Mapped[int] = mapped_column(BigInteger)
    running_per: Mapped[int] = mapped_column(BigInteger, default=1)
    idle_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    idle_per: Mapped[int] = mapped_column(BigInteger, default=1)
    session_fee_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    minimum_charge_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    increment_minutes: Mapped[int] = mapped_column(default=1)
    rounding: Mapped[str] = mapped_column(String(8), default="up")
    grace_minutes: Mapped[int] = mapped_column(default=0)
    daily_cap_cents: Mapped[int | None] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int] = mapped_column(default=2000)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    price_list: Mapped[PriceList] = relationship()


class PlanRow(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    monthly_fee_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int] = mapped_column(default=2000)

    included: Mapped[list["PlanMinutes"]] = relationship(order_by="PlanMinutes.machine_class")


class PlanMinutes(Base):
    """Minutes of running time a plan includes each month for one machine class."""

    __tablename__ = "plan_minutes"

    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True)
    machine_class: Mapped[str] = mapped_column(String(40), primary_key=True)
    minutes: Mapped[int]


@append_only
class MemberPlan(Base):
    """From ``valid_from`` (the first of a month) the member is on ``plan`` (None: no plan any more)."""

    __tablename__ = "member_plans"
    __table_args__ = (UniqueConstraint("member_id", "valid_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"))
    valid_from: Mapped[date] = mapped_column(Date)


class Organisation(Base):
    """Pays for its members' usage, at its own price list."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(140))
    address: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str | None] = mapped_column(String(254))
    price_list_id: Mapped[int | None] = mapped_column(ForeignKey("price_lists.id"))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ConsumableRow(Base):
    __tablename__ = "consumables"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    unit: Mapped[str] = mapped_column(String(8))
    unit_cents: Mapped[int] = mapped_column(BigInteger)
    unit_per: Mapped[int] = mapped_column(BigInteger, default=1)
    vat_rate_bp: Mapped[int] = mapped_column(default=2000)


@append_only
class ConsumableSaleRow(Base):
    __tablename__ = "consumable_sales"

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    sale_id: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    consumable_id: Mapped[int] = mapped_column(ForeignKey("consumables.id"))
    quantity: Mapped[int] = mapped_column(BigInteger)
    sold_at: Mapped[datetime] = mapped_column(index=True)

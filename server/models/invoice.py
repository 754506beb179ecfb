"""Closed periods, invoices and their lines, and what each session and sale was billed on.

Everything here is append-only: an invoice is never edited (a credit note reverses it),
a closed period never reopens. ``invoices.hash`` chains each invoice to the one before.
"""

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.clock import utc_now
from server.db import Base, BigPK, append_only


@append_only
class BillingPeriod(Base):
    """A month once closed: ``period`` is ``YYYY-MM``."""

    __tablename__ = "billing_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7), unique=True)
    closed_at: Mapped[datetime] = mapped_column(default=utc_now)
    issued_on: Mapped[date] = mapped_column(Date)
    invoice_count: Mapped[int]


@append_only
class InvoiceRow(Base):
    """An invoice or a credit note as issued, with the seller and payer as they stood then."""

    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_payer_kind_payer_id", "payer_kind", "payer_id"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    number: Mapped[str] = mapped_column(String(11), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    period: Mapped[str] = mapped_column(String(7), index=True)
    credited_invoice: Mapped[str] = mapped_column(String(11), default="")
    seller_name: Mapped[str] = mapped_column(String(140))
    seller_address: Mapped[str] = mapped_column(Text)
    seller_siret: Mapped[str] = mapped_column(String(14))
    seller_vat_number: Mapped[str] = mapped_column(String(20))
    seller_vat_exempt: Mapped[bool]
    seller_payment_terms: Mapped[str] = mapped_column(Text)
    payer_kind: Mapped[str] = mapped_column(String(16))
    payer_id: Mapped[int]
    payer_name: Mapped[str] = mapped_column(String(140))
    payer_address: Mapped[str] = mapped_column(Text)
    payer_reference: Mapped[str] = mapped_column(String(40))
    payer_email: Mapped[str] = mapped_column(String(254))
    total_excl_vat_cents: Mapped[int] = mapped_column(BigInteger)
    vat_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    lines: Mapped[list["InvoiceLineRow"]] = relationship(order_by="InvoiceLineRow.position")


@append_only
class InvoiceLineRow(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_invoice_id_position", "invoice_id", "position", unique=True),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int]
    member_name: Mapped[str] = mapped_column(String(120))
    machine: Mapped[str] = mapped_column(String(64))
    machine_name: Mapped[str] = mapped_column(String(120))
    day: Mapped[date | None] = mapped_column(Date)
    item: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(8))
    unit_price_cents: Mapped[int | None] = mapped_column(BigInteger)
    unit_price_per: Mapped[int | None] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int]
    vat_cents: Mapped[int] = mapped_column(BigInteger)
    price_version: Mapped[str] = mapped_column(String(64))
    adjustment_for: Mapped[str | None] = mapped_column(String(7))


@append_only
class UsageCharge(Base):
    """How one usage session was rated, and on which invoice: a session is billed once."""

    __tablename__ = "usage_charges"

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    usage_session_id: Mapped[int] = mapped_column(ForeignKey("usage_sessions.id"), unique=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    """None for a free try on a payer that got no invoice."""
    period: Mapped[str] = mapped_column(String(7), index=True)
    """The period it was billed in."""
    day: Mapped[date] = mapped_column(Date)
    member_id: Mapped[int]
    machine: Mapped[str] = mapped_column(String(64))
    price_version: Mapped[str] = mapped_column(String(64))
    free_try: Mapped[bool]
    running_minutes: Mapped[int]
    included_minutes: Mapped[int]
    idle_minutes: Mapped[int]
    fee_cents: Mapped[int] = mapped_column(BigInteger)
    metered_cents: Mapped[int] = mapped_column(BigInteger)
    minimum_topup_cents: Mapped[int] = mapped_column(BigInteger)
    adjustment_for: Mapped[str | None] = mapped_column(String(7))


@append_only
class SaleCharge(Base):
    """A consumable sale billed on an invoice."""

    __tablename__ = "sale_charges"

    consumable_sale_id: Mapped[int] = mapped_column(
        BigPK, ForeignKey("consumable_sales.id"), primary_key=True, autoincrement=False
    )
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))

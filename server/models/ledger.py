"""The ledger (journal entries and their postings), SEPA mandates and collections, payments.

All append-only: a mistake is corrected by a reversing entry, a mandate replaced by a
newer one for the same payer, a rejected direct debit recorded as its own payment row.
"""

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.clock import utc_now
from server.db import Base, BigPK, append_only


@append_only
class JournalEntryRow(Base):
    __tablename__ = "journal_entries"
    __table_args__ = (UniqueConstraint("journal", "number"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    journal: Mapped[str] = mapped_column(String(4))
    number: Mapped[int] = mapped_column(BigInteger)
    on: Mapped[date] = mapped_column(Date, index=True)
    reference: Mapped[str] = mapped_column(String(64))
    reference_date: Mapped[date] = mapped_column(Date)
    label: Mapped[str] = mapped_column(String(200))
    reverses: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    postings: Mapped[list["PostingRow"]] = relationship(order_by="PostingRow.id")


@append_only
class PostingRow(Base):
    __tablename__ = "postings"
    # A payer's balance (the prepaid decision at the machine) is one range on this index.
    __table_args__ = (Index("ix_postings_account_auxiliary", "account", "auxiliary"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(8))
    account_name: Mapped[str] = mapped_column(String(120))
    auxiliary: Mapped[str] = mapped_column(String(16))
    auxiliary_name: Mapped[str] = mapped_column(String(140))
    debit_cents: Mapped[int] = mapped_column(BigInteger)
    credit_cents: Mapped[int] = mapped_column(BigInteger)


@append_only
class MandateRow(Base):
    """A payer's SEPA mandate; the latest one per payer applies."""

    __tablename__ = "mandates"
    __table_args__ = (Index("ix_mandates_payer_kind_payer_id", "payer_kind", "payer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payer_kind: Mapped[str] = mapped_column(String(16))
    payer_id: Mapped[int]
    reference: Mapped[str] = mapped_column(String(35), unique=True)
    debtor_name: Mapped[str] = mapped_column(String(140))
    iban: Mapped[str] = mapped_column(String(34))
    bic: Mapped[str] = mapped_column(String(11), default="")
    signed_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


@append_only
class SepaFile(Base):
    __tablename__ = "sepa_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(35), unique=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    created_at: Mapped[datetime]
    collection_date: Mapped[date] = mapped_column(Date)
    document: Mapped[bytes] = mapped_column(LargeBinary)


@append_only
class DirectDebitRow(Base):
    __tablename__ = "direct_debits"

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    sepa_file_id: Mapped[int] = mapped_column(ForeignKey("sepa_files.id"), index=True)
    mandate_id: Mapped[int] = mapped_column(ForeignKey("mandates.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    sequence: Mapped[str] = mapped_column(String(4))


@append_only
class PaymentRow(Base):
    """Money in (``sepa``, ``transfer``, ``cash``, ``card``) or a ``rejected`` direct debit.

    A rejection names the invoice whose collection failed: the invoice is due again.
    """

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_payer_kind_payer_id", "payer_kind", "payer_id"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    payer_kind: Mapped[str] = mapped_column(String(16))
    payer_id: Mapped[int]
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

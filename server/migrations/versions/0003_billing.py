"""Billing: the association's settings, price lists and versions, plans, organisations,
consumables and sales, closed periods, invoices and lines, usage charges, the ledger,
SEPA mandates and collections, payments; members' billing fields; sessions' energy.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:  # noqa: PLR0915 - one table after another
    op.create_table(
        "billing_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("invoice_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_periods")),
        sa.UniqueConstraint("period", name=op.f("uq_billing_periods_period")),
    )
    op.create_table(
        "billing_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=140), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("siret", sa.String(length=14), nullable=False),
        sa.Column("vat_exempt", sa.Boolean(), nullable=False),
        sa.Column("vat_number", sa.String(length=20), nullable=False),
        sa.Column("payment_terms", sa.Text(), nullable=False),
        sa.Column("creditor_id", sa.String(length=35), nullable=True),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("due_days", sa.Integer(), nullable=False),
        sa.Column("minimum_balance_cents", sa.BigInteger(), nullable=False),
        sa.Column("default_price_list", sa.String(length=40), nullable=False),
        sa.Column("partner_price_list", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_settings")),
    )
    op.create_table(
        "consumables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("unit_cents", sa.BigInteger(), nullable=False),
        sa.Column("unit_per", sa.BigInteger(), nullable=False),
        sa.Column("vat_rate_bp", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consumables")),
        sa.UniqueConstraint("code", name=op.f("uq_consumables_code")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=11), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("credited_invoice", sa.String(length=11), nullable=False),
        sa.Column("seller_name", sa.String(length=140), nullable=False),
        sa.Column("seller_address", sa.Text(), nullable=False),
        sa.Column("seller_siret", sa.String(length=14), nullable=False),
        sa.Column("seller_vat_number", sa.String(length=20), nullable=False),
        sa.Column("seller_vat_exempt", sa.Boolean(), nullable=False),
        sa.Column("seller_payment_terms", sa.Text(), nullable=False),
        sa.Column("payer_kind", sa.String(length=16), nullable=False),
        sa.Column("payer_id", sa.Integer(), nullable=False),
        sa.Column("payer_name", sa.String(length=140), nullable=False),
        sa.Column("payer_address", sa.Text(), nullable=False),
        sa.Column("payer_reference", sa.String(length=40), nullable=False),
        sa.Column("payer_email", sa.String(length=254), nullable=False),
        sa.Column("total_excl_vat_cents", sa.BigInteger(), nullable=False),
        sa.Column("vat_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("hash", name=op.f("uq_invoices_hash")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index("ix_invoices_payer_kind_payer_id", ["payer_kind", "payer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_invoices_period"), ["period"], unique=False)

    op.create_table(
        "journal_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("journal", sa.String(length=4), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("reference_date", sa.Date(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("reverses", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
        sa.UniqueConstraint("journal", "number", name=op.f("uq_journal_entries_journal_number")),
    )
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_journal_entries_on"), ["on"], unique=False)

    op.create_table(
        "mandates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payer_kind", sa.String(length=16), nullable=False),
        sa.Column("payer_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=35), nullable=False),
        sa.Column("debtor_name", sa.String(length=140), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mandates")),
        sa.UniqueConstraint("reference", name=op.f("uq_mandates_reference")),
    )
    with op.batch_alter_table("mandates", schema=None) as batch_op:
        batch_op.create_index("ix_mandates_payer_kind_payer_id", ["payer_kind", "payer_id"], unique=False)

    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("monthly_fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("vat_rate_bp", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_plans_code")),
    )
    op.create_table(
        "price_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_lists")),
        sa.UniqueConstraint("code", name=op.f("uq_price_lists_code")),
    )
    op.create_table(
        "sepa_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=35), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("collection_date", sa.Date(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sepa_files")),
        sa.UniqueConstraint("message_id", name=op.f("uq_sepa_files_message_id")),
    )
    with op.batch_alter_table("sepa_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sepa_files_period"), ["period"], unique=False)

    op.create_table(
        "direct_debits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sepa_file_id", sa.Integer(), nullable=False),
        sa.Column("mandate_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.String(length=4), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_direct_debits_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["mandate_id"], ["mandates.id"], name=op.f("fk_direct_debits_mandate_id_mandates")
        ),
        sa.ForeignKeyConstraint(
            ["sepa_file_id"], ["sepa_files.id"], name=op.f("fk_direct_debits_sepa_file_id_sepa_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_direct_debits")),
    )
    with op.batch_alter_table("direct_debits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_direct_debits_invoice_id"), ["invoice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_direct_debits_mandate_id"), ["mandate_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_direct_debits_sepa_file_id"), ["sepa_file_id"], unique=False)

    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("member_name", sa.String(length=120), nullable=False),
        sa.Column("machine", sa.String(length=64), nullable=False),
        sa.Column("machine_name", sa.String(length=120), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("item", sa.String(length=120), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=True),
        sa.Column("unit_price_per", sa.BigInteger(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("vat_rate_bp", sa.Integer(), nullable=False),
        sa.Column("vat_cents", sa.BigInteger(), nullable=False),
        sa.Column("price_version", sa.String(length=64), nullable=False),
        sa.Column("adjustment_for", sa.String(length=7), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.create_index("ix_invoice_lines_invoice_id_position", ["invoice_id", "position"], unique=True)

    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=140), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("price_list_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["price_list_id"], ["price_lists.id"], name=op.f("fk_organisations_price_list_id_price_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payer_kind", sa.String(length=16), nullable=False),
        sa.Column("payer_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.id"], name=op.f("fk_payments_entry_id_journal_entries")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_payments_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_invoice_id"), ["invoice_id"], unique=False)
        batch_op.create_index("ix_payments_payer_kind_payer_id", ["payer_kind", "payer_id"], unique=False)

    op.create_table(
        "plan_minutes",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("machine_class", sa.String(length=40), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_minutes_plan_id_plans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("plan_id", "machine_class", name=op.f("pk_plan_minutes")),
    )
    op.create_table(
        "postings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=8), nullable=False),
        sa.Column("account_name", sa.String(length=120), nullable=False),
        sa.Column("auxiliary", sa.String(length=16), nullable=False),
        sa.Column("auxiliary_name", sa.String(length=140), nullable=False),
        sa.Column("debit_cents", sa.BigInteger(), nullable=False),
        sa.Column("credit_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.id"], name=op.f("fk_postings_entry_id_journal_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index("ix_postings_account_auxiliary", ["account", "auxiliary"], unique=False)
        batch_op.create_index(batch_op.f("ix_postings_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "price_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("price_list_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("machine_class", sa.String(length=40), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("running_cents", sa.BigInteger(), nullable=False),
        sa.Column("running_per", sa.BigInteger(), nullable=False),
        sa.Column("idle_cents", sa.BigInteger(), nullable=False),
        sa.Column("idle_per", sa.BigInteger(), nullable=False),
        sa.Column("session_fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("minimum_charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("increment_minutes", sa.Integer(), nullable=False),
        sa.Column("rounding", sa.String(length=8), nullable=False),
        sa.Column("grace_minutes", sa.Integer(), nullable=False),
        sa.Column("daily_cap_cents", sa.BigInteger(), nullable=True),
        sa.Column("vat_rate_bp", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machines.id"], name=op.f("fk_price_versions_machine_id_machines")
        ),
        sa.ForeignKeyConstraint(
            ["price_list_id"], ["price_lists.id"], name=op.f("fk_price_versions_price_list_id_price_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_versions")),
        sa.UniqueConstraint("code", name=op.f("uq_price_versions_code")),
    )
    with op.batch_alter_table("price_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_price_versions_machine_id"), ["machine_id"], unique=False)
        batch_op.create_index(
            "ix_price_versions_price_list_id_valid_from", ["price_list_id", "valid_from"], unique=False
        )

    op.create_table(
        "consumable_sales",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sale_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("consumable_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("sold_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consumable_id"], ["consumables.id"], name=op.f("fk_consumable_sales_consumable_id_consumables")
        ),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machines.id"], name=op.f("fk_consumable_sales_machine_id_machines")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_consumable_sales_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consumable_sales")),
        sa.UniqueConstraint("sale_id", name=op.f("uq_consumable_sales_sale_id")),
    )
    with op.batch_alter_table("consumable_sales", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consumable_sales_member_id"), ["member_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consumable_sales_sold_at"), ["sold_at"], unique=False)

    op.create_table(
        "member_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_member_plans_member_id_members")
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_member_plans_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_plans")),
        sa.UniqueConstraint("member_id", "valid_from", name=op.f("uq_member_plans_member_id_valid_from")),
    )
    with op.batch_alter_table("member_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_plans_member_id"), ["member_id"], unique=False)

    op.create_table(
        "sale_charges",
        sa.Column(
            "consumable_sale_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.ForeignKeyConstraint(
            ["consumable_sale_id"],
            ["consumable_sales.id"],
            name=op.f("fk_sale_charges_consumable_sale_id_consumable_sales"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_sale_charges_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("consumable_sale_id", name=op.f("pk_sale_charges")),
    )
    with op.batch_alter_table("sale_charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sale_charges_invoice_id"), ["invoice_id"], unique=False)

    op.create_table(
        "usage_charges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("usage_session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("machine", sa.String(length=64), nullable=False),
        sa.Column("price_version", sa.String(length=64), nullable=False),
        sa.Column("free_try", sa.Boolean(), nullable=False),
        sa.Column("running_minutes", sa.Integer(), nullable=False),
        sa.Column("included_minutes", sa.Integer(), nullable=False),
        sa.Column("idle_minutes", sa.Integer(), nullable=False),
        sa.Column("fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("metered_cents", sa.BigInteger(), nullable=False),
        sa.Column("minimum_topup_cents", sa.BigInteger(), nullable=False),
        sa.Column("adjustment_for", sa.String(length=7), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_usage_charges_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["usage_session_id"],
            ["usage_sessions.id"],
            name=op.f("fk_usage_charges_usage_session_id_usage_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_charges")),
        sa.UniqueConstraint("usage_session_id", name=op.f("uq_usage_charges_usage_session_id")),
    )
    with op.batch_alter_table("usage_charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_charges_invoice_id"), ["invoice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_charges_period"), ["period"], unique=False)

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("organisation_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("price_list_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("partner_association", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("prepaid", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f("ix_members_organisation_id"), ["organisation_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_members_organisation_id_organisations"),
            "organisations",
            ["organisation_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_members_price_list_id_price_lists"), "price_lists", ["price_list_id"], ["id"]
        )

    # Existing members get a value through a server default, dropped again: the
    # application always says what it means.
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.alter_column("address", server_default=None)
        batch_op.alter_column("prepaid", server_default=None)

    with op.batch_alter_table("usage_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("energy_wh", sa.Double(), nullable=True))


def downgrade() -> None:  # noqa: PLR0915 - one table after another
    with op.batch_alter_table("usage_sessions", schema=None) as batch_op:
        batch_op.drop_column("energy_wh")

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_members_price_list_id_price_lists"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_members_organisation_id_organisations"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_members_organisation_id"))
        batch_op.drop_column("prepaid")
        batch_op.drop_column("partner_association")
        batch_op.drop_column("price_list_id")
        batch_op.drop_column("organisation_id")
        batch_op.drop_column("address")

    with op.batch_alter_table("usage_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_charges_period"))
        batch_op.drop_index(batch_op.f("ix_usage_charges_invoice_id"))

    op.drop_table("usage_charges")
    with op.batch_alter_table("sale_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sale_charges_invoice_id"))

    op.drop_table("sale_charges")
    with op.batch_alter_table("member_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_plans_member_id"))

    op.drop_table("member_plans")
    with op.batch_alter_table("consumable_sales", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consumable_sales_sold_at"))
        batch_op.drop_index(batch_op.f("ix_consumable_sales_member_id"))

    op.drop_table("consumable_sales")
    with op.batch_alter_table("price_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_price_versions_price_list_id_valid_from")
        batch_op.drop_index(batch_op.f("ix_price_versions_machine_id"))

    op.drop_table("price_versions")
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_postings_entry_id"))
        batch_op.drop_index("ix_postings_account_auxiliary")

    op.drop_table("postings")
    op.drop_table("plan_minutes")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_payer_kind_payer_id")
        batch_op.drop_index(batch_op.f("ix_payments_invoice_id"))

    op.drop_table("payments")
    op.drop_table("organisations")
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_lines_invoice_id_position")

    op.drop_table("invoice_lines")
    with op.batch_alter_table("direct_debits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_direct_debits_sepa_file_id"))
        batch_op.drop_index(batch_op.f("ix_direct_debits_mandate_id"))
        batch_op.drop_index(batch_op.f("ix_direct_debits_invoice_id"))

    op.drop_table("direct_debits")
    with op.batch_alter_table("sepa_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sepa_files_period"))

    op.drop_table("sepa_files")
    op.drop_table("price_lists")
    op.drop_table("plans")
    with op.batch_alter_table("mandates", schema=None) as batch_op:
        batch_op.drop_index("ix_mandates_payer_kind_payer_id")

    op.drop_table("mandates")
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journal_entries_on"))

    op.drop_table("journal_entries")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoices_period"))
        batch_op.drop_index("ix_invoices_payer_kind_payer_id")

    op.drop_table("invoices")
    op.drop_table("consumables")
    op.drop_table("billing_settings")
    op.drop_table("billing_periods")

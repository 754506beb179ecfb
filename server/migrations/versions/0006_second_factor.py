"""Second factor: machines that also ask for a confirmation in the web app, and those confirmations.

Every machine existing before this revision keeps asking for the badge alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-13
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def Moment() -> sa.DateTime:  # noqa: N802 - reads as a type
    # server.db.UTCDateTime stores this; a migration must not import application code.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(sa.Column("second_factor", sa.Boolean(), nullable=False, server_default=sa.false()))

    op.create_table(
        "second_factor_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", Moment(), nullable=False),
        sa.Column("used_at", Moment(), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_second_factor_confirmations_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["machine_id"],
            ["machines.id"],
            name=op.f("fk_second_factor_confirmations_machine_id_machines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_second_factor_confirmations")),
    )
    op.create_index(
        "ix_second_factor_confirmations_member_id_machine_id",
        "second_factor_confirmations",
        ["member_id", "machine_id", "confirmed_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_second_factor_confirmations_member_id_machine_id", table_name="second_factor_confirmations"
    )
    op.drop_table("second_factor_confirmations")
    with op.batch_alter_table("machines") as batch:
        batch.drop_column("second_factor")

"""Allowlist: the version, content digest and issue time of each gateway's last signed
snapshot. Clocks: each gateway's clock offset from its last status, and sessions flagged
when their gateway's clock was off.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def Moment() -> sa.DateTime:  # noqa: N802 - reads as a type
    # server.db.UTCDateTime stores this; a migration must not import application code.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    # Existing rows get a value through a server default, which is then dropped: the
    # application always says what it means.
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("allowlist_version", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("allowlist_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("allowlist_issued_at", Moment(), nullable=True))
        batch.add_column(sa.Column("clock_offset_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("clock_checked_at", Moment(), nullable=True))
    with op.batch_alter_table("gateways") as batch:
        batch.alter_column("allowlist_version", server_default=None)

    with op.batch_alter_table("usage_sessions") as batch:
        batch.add_column(sa.Column("clock_suspect", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("clock_offset_ms", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("usage_sessions") as batch:
        batch.alter_column("clock_suspect", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("usage_sessions") as batch:
        batch.drop_column("clock_offset_ms")
        batch.drop_column("clock_suspect")
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("clock_checked_at")
        batch.drop_column("clock_offset_ms")
        batch.drop_column("allowlist_issued_at")
        batch.drop_column("allowlist_digest")
        batch.drop_column("allowlist_version")

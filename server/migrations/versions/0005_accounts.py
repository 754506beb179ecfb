"""Accounts: a password per member, erasure, browser sessions, and scoped, expiring API tokens.

Tokens made before this revision could do whatever their member's roles allowed: they
get every scope, so that nothing they did stops working.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERY_SCOPE = "read training billing manage"


def Moment() -> sa.DateTime:  # noqa: N802 - reads as a type
    # server.db.UTCDateTime stores this; a migration must not import application code.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("password_changed_at", Moment(), nullable=True))
        batch.add_column(sa.Column("erased_at", Moment(), nullable=True))

    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("scopes", sa.String(length=64), nullable=False, server_default=EVERY_SCOPE)
        )
        batch.add_column(sa.Column("expires_at", Moment(), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("scopes", server_default=None)

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", Moment(), nullable=False),
        sa.Column("last_seen_at", Moment(), nullable=False),
        sa.Column("expires_at", Moment(), nullable=False),
        sa.Column("revoked_at", Moment(), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_web_sessions_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index(op.f("ix_web_sessions_member_id"), "web_sessions", ["member_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_web_sessions_member_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("scopes")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("password_changed_at")
        batch.drop_column("password_hash")

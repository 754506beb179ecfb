"""Training: skill prerequisites and disuse periods, certification history, the audit
trail, member roles, supervised sessions and API tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def Moment() -> sa.DateTime:  # noqa: N802 - reads as a type
    # server.db.UTCDateTime stores this; a migration must not import application code.
    return sa.DateTime(timezone=True)


def one_of(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=name)


def upgrade() -> None:
    # Existing rows get a value through a server default, which is then dropped: the
    # application always says what it means.
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("is_manager", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("is_treasurer", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("members") as batch:
        batch.alter_column("is_manager", server_default=None)
        batch.alter_column("is_treasurer", server_default=None)

    with op.batch_alter_table("skills") as batch:
        batch.add_column(sa.Column("disuse_months", sa.Integer(), nullable=True))

    op.create_table(
        "skill_prerequisites",
        sa.Column("skill_id", sa.Integer(), nullable=False),
        sa.Column("prerequisite_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["skill_id"], ["skills.id"], name=op.f("fk_skill_prerequisites_skill_id_skills"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["prerequisite_id"], ["skills.id"], name=op.f("fk_skill_prerequisites_prerequisite_id_skills")
        ),
        sa.PrimaryKeyConstraint("skill_id", "prerequisite_id", name=op.f("pk_skill_prerequisites")),
    )
    op.create_index(op.f("ix_skill_prerequisites_prerequisite_id"), "skill_prerequisites", ["prerequisite_id"])

    # Certifications made before this revision were made by managers' tools.
    with op.batch_alter_table("certifications") as batch:
        batch.add_column(sa.Column("granted_via", sa.String(length=16), nullable=False, server_default="seed"))
        batch.add_column(sa.Column("revoked_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lapsed_at", Moment(), nullable=True))
    with op.batch_alter_table("certifications") as batch:
        batch.alter_column("granted_via", server_default=None)
        batch.create_check_constraint(
            op.f("ck_certifications_granted_via"), "granted_via IN ('web', 'machine', 'seed')"
        )
        batch.create_foreign_key(
            op.f("fk_certifications_revoked_by_id_members"), "members", ["revoked_by_id"], ["id"]
        )
        batch.create_index(op.f("ix_certifications_granted_by_id"), ["granted_by_id"])

    op.create_table(
        "certification_events",
        sa.Column("id", BigPK, nullable=False),
        sa.Column("certification_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", Moment(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["certification_id"],
            ["certifications.id"],
            name=op.f("fk_certification_events_certification_id_certifications"),
        ),
        sa.ForeignKeyConstraint(["actor_id"], ["members.id"], name=op.f("fk_certification_events_actor_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certification_events")),
        sa.UniqueConstraint(
            "certification_id", "kind", name=op.f("uq_certification_events_certification_id_kind")
        ),
        one_of(
            "kind", ["granted", "revoked", "expired"], op.f("ck_certification_events_certification_event_kind")
        ),
    )
    op.create_index(op.f("ix_certification_events_at"), "certification_events", ["at"])
    op.create_index(op.f("ix_certification_events_actor_id"), "certification_events", ["actor_id"])
    # Every certification made before this revision gets its grant in the history.
    op.execute(
        "INSERT INTO certification_events (certification_id, kind, at, actor_id, via) "
        "SELECT id, 'granted', granted_at, granted_by_id, 'seed' FROM certifications"
    )
    op.execute(
        "INSERT INTO certification_events (certification_id, kind, at, via, reason) "
        "SELECT id, 'revoked', revoked_at, 'seed', revoke_reason FROM certifications "
        "WHERE revoked_at IS NOT NULL"
    )

    op.create_table(
        "audit_entries",
        sa.Column("id", BigPK, nullable=False),
        sa.Column("at", Moment(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["members.id"], name=op.f("fk_audit_entries_actor_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    op.create_index(op.f("ix_audit_entries_at"), "audit_entries", ["at"])
    op.create_index(op.f("ix_audit_entries_actor_id"), "audit_entries", ["actor_id"])
    op.create_index("ix_audit_entries_subject_type_subject_id", "audit_entries", ["subject_type", "subject_id"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("created_at", Moment(), nullable=False),
        sa.Column("revoked_at", Moment(), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_api_tokens_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_member_id"), "api_tokens", ["member_id"])

    with op.batch_alter_table("usage_sessions") as batch:
        batch.add_column(sa.Column("supervisor_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_usage_sessions_supervisor_id_members"), "members", ["supervisor_id"], ["id"]
        )
        batch.create_index(
            "ix_usage_sessions_member_id_machine_id_started_at", ["member_id", "machine_id", "started_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_sessions") as batch:
        batch.drop_index("ix_usage_sessions_member_id_machine_id_started_at")
        batch.drop_constraint(op.f("fk_usage_sessions_supervisor_id_members"), type_="foreignkey")
        batch.drop_column("supervisor_id")
    # Dropping a table drops its indexes.
    for table in ("api_tokens", "audit_entries", "certification_events", "skill_prerequisites"):
        op.drop_table(table)
    with op.batch_alter_table("certifications") as batch:
        batch.drop_index(op.f("ix_certifications_granted_by_id"))
        batch.drop_constraint(op.f("fk_certifications_revoked_by_id_members"), type_="foreignkey")
        batch.drop_constraint(op.f("ck_certifications_granted_via"), type_="check")
        batch.drop_column("lapsed_at")
        batch.drop_column("revoked_by_id")
        batch.drop_column("granted_via")
    with op.batch_alter_table("skills") as batch:
        batch.drop_column("disuse_months")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("is_treasurer")
        batch.drop_column("is_manager")

"""Initial schema: members, badges, skills, certifications, gateways, machines,
usage sessions, applied gateway events and the access decision log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
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
    op.create_table(
        "gateways",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("boot", sa.Integer(), nullable=False),
        sa.Column("software", sa.String(length=64), nullable=False),
        sa.Column("last_seen_at", Moment(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
        sa.UniqueConstraint("slug", name=op.f("uq_gateways_slug")),
        one_of("state", ["unknown", "online", "offline", "lost"], op.f("ck_gateways_gateway_state")),
    )
    op.create_index(op.f("ix_gateways_site"), "gateways", ["site"])

    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", Moment(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        one_of("status", ["active", "suspended"], op.f("ck_members_member_status")),
    )

    op.create_table(
        "skills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skills")),
        sa.UniqueConstraint("slug", name=op.f("uq_skills_slug")),
    )

    op.create_table(
        "access_decisions",
        sa.Column("id", BigPK, nullable=False),
        sa.Column("at", Moment(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_slug", sa.String(length=64), nullable=False),
        sa.Column("machine_slug", sa.String(length=64), nullable=False),
        sa.Column("badge_uid", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_access_decisions_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_decisions")),
    )
    op.create_index(op.f("ix_access_decisions_at"), "access_decisions", ["at"])
    op.create_index("ix_access_decisions_member_id_at", "access_decisions", ["member_id", "at"])

    op.create_table(
        "badges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at", Moment(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_badges_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_badges")),
        sa.UniqueConstraint("uid", name=op.f("uq_badges_uid")),
    )
    op.create_index(op.f("ix_badges_member_id"), "badges", ["member_id"])

    op.create_table(
        "certifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("skill_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("granted_at", Moment(), nullable=False),
        sa.Column("granted_by_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", Moment(), nullable=True),
        sa.Column("revoked_at", Moment(), nullable=True),
        sa.Column("revoke_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["granted_by_id"], ["members.id"], name=op.f("fk_certifications_granted_by_id_members")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_certifications_member_id_members")),
        sa.ForeignKeyConstraint(["skill_id"], ["skills.id"], name=op.f("fk_certifications_skill_id_skills")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certifications")),
        one_of(
            "level", ["supervised", "autonomous", "trainer"], op.f("ck_certifications_certification_level")
        ),
    )
    op.create_index("ix_certifications_member_id_skill_id", "certifications", ["member_id", "skill_id"])
    op.create_index(op.f("ix_certifications_skill_id"), "certifications", ["skill_id"])

    op.create_table(
        "gateway_events",
        sa.Column("id", BigPK, nullable=False),
        sa.Column("gateway_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("received_at", Moment(), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_gateway_events_gateway_id_gateways")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_events")),
        sa.UniqueConstraint("gateway_id", "seq", name=op.f("uq_gateway_events_gateway_id_seq")),
    )

    op.create_table(
        "machines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("machine_class", sa.String(length=40), nullable=False),
        sa.Column("gateway_id", sa.Integer(), nullable=True),
        sa.Column("locked_out", sa.Boolean(), nullable=False),
        sa.Column("lockout_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"], name=op.f("fk_machines_gateway_id_gateways")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machines")),
        sa.UniqueConstraint("slug", name=op.f("uq_machines_slug")),
    )
    op.create_index(op.f("ix_machines_gateway_id"), "machines", ["gateway_id"])

    op.create_table(
        "machine_skills",
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("skill_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["machine_id"],
            ["machines.id"],
            name=op.f("fk_machine_skills_machine_id_machines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["skill_id"], ["skills.id"], name=op.f("fk_machine_skills_skill_id_skills")),
        sa.PrimaryKeyConstraint("machine_id", "skill_id", name=op.f("pk_machine_skills")),
    )
    op.create_index(op.f("ix_machine_skills_skill_id"), "machine_skills", ["skill_id"])

    op.create_table(
        "usage_sessions",
        sa.Column("id", BigPK, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("badge_uid", sa.String(length=32), nullable=True),
        sa.Column("decided_by", sa.String(length=16), nullable=True),
        sa.Column("started_at", Moment(), nullable=False),
        sa.Column("ended_at", Moment(), nullable=True),
        sa.Column("unlocked_ms", sa.BigInteger(), nullable=False),
        sa.Column("running_ms", sa.BigInteger(), nullable=False),
        sa.Column("idle_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_reason", sa.String(length=40), nullable=True),
        sa.Column("last_event_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_usage_sessions_gateway_id_gateways")
        ),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machines.id"], name=op.f("fk_usage_sessions_machine_id_machines")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_usage_sessions_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_sessions")),
        sa.UniqueConstraint("session_id", name=op.f("uq_usage_sessions_session_id")),
    )
    op.create_index(op.f("ix_usage_sessions_gateway_id"), "usage_sessions", ["gateway_id"])
    op.create_index(op.f("ix_usage_sessions_machine_id"), "usage_sessions", ["machine_id"])
    op.create_index(op.f("ix_usage_sessions_member_id"), "usage_sessions", ["member_id"])
    op.create_index(op.f("ix_usage_sessions_started_at"), "usage_sessions", ["started_at"])


def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents.
    for table in (
        "usage_sessions",
        "machine_skills",
        "machines",
        "gateway_events",
        "certifications",
        "badges",
        "access_decisions",
        "skills",
        "members",
        "gateways",
    ):
        op.drop_table(table)

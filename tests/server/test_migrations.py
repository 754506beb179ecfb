"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import server.models  # noqa: F401 - registers every table
from server.db import Base, alembic_config, make_engine, upgrade_database


def differences(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_match_the_models(database_url: str) -> None:
    upgrade_database(database_url)
    assert differences(database_url) == []


def test_the_comparison_would_see_a_drift(database_url: str) -> None:
    # Guards the test above against comparing nothing at all.
    upgrade_database(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_usage_sessions_started_at"))
        connection.execute(sa.text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    found = {str(diff[0]) for diff in differences(database_url)}
    assert found == {"add_index", "remove_table"}


def test_upgrade_is_idempotent_and_reaches_head(database_url: str) -> None:
    upgrade_database(database_url)
    upgrade_database(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert current == head == "0006"


def test_downgrade_to_nothing_and_back(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        config = alembic_config(database_url)
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    with engine.connect() as connection:
        assert sa.inspect(connection).get_table_names() == ["alembic_version"]
    engine.dispose()
    upgrade_database(database_url)
    assert differences(database_url) == []


def test_existing_records_get_their_history(database_url: str) -> None:
    # A database made by revision 0001, with a certification granted then revoked.
    upgrade_database(database_url, "0001")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO members (id, name, status, created_at) VALUES "
                "(1, 'Tess', 'active', '2026-01-01 10:00:00'), (2, 'Bob', 'active', '2026-01-01 10:00:00')"
            )
        )
        connection.execute(
            sa.text("INSERT INTO skills (id, slug, name, description) VALUES (1, 'sewing', 'Sewing', '')")
        )
        connection.execute(
            sa.text(
                "INSERT INTO certifications (id, member_id, skill_id, level, granted_at, granted_by_id, revoked_at, "
                "revoke_reason) VALUES (1, 2, 1, 'autonomous', '2026-01-02 10:00:00', 1, '2026-02-01 10:00:00', 'left')"
            )
        )
    upgrade_database(database_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT granted_via FROM certifications")).scalar_one() == "seed"
        managers = connection.execute(
            sa.text("SELECT is_manager, is_treasurer FROM members ORDER BY id")
        ).all()
        assert [tuple(row) for row in managers] == [(False, False), (False, False)]
        events = connection.execute(
            sa.text("SELECT kind, actor_id, via, reason FROM certification_events ORDER BY id")
        ).all()
        assert [tuple(row) for row in events] == [
            ("granted", 1, "seed", None),
            ("revoked", None, "seed", "left"),
        ]
    engine.dispose()
    assert differences(database_url) == []


def test_tokens_made_before_scopes_keep_every_scope(database_url: str) -> None:
    upgrade_database(database_url, "0004")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO members (id, name, status, created_at, is_manager, is_treasurer, address, prepaid) "
                    "VALUES (1, 'Tess', 'active', '2026-01-01 10:00:00', false, false, '', false)")
        )  # fmt: skip
        connection.execute(
            sa.text("INSERT INTO api_tokens (id, token_hash, member_id, label, created_at) "
                    "VALUES (1, :hash, 1, 'old', '2026-01-01 10:00:00')"),
            {"hash": "0" * 64},
        )  # fmt: skip
    upgrade_database(database_url)
    with engine.connect() as connection:
        token = connection.execute(sa.text("SELECT scopes, expires_at FROM api_tokens")).one()
        assert tuple(token) == ("read training billing manage", None)
        member = connection.execute(sa.text("SELECT password_hash, erased_at FROM members")).one()
        assert tuple(member) == (None, None)
    engine.dispose()
    assert differences(database_url) == []

"""The database layer: aware UTC times everywhere, SQLite set up for concurrent use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from server.db import SessionFactory, make_engine, normalise_url
from server.models import Badge, Member


def test_times_come_back_aware_and_in_utc(db: Session, session_factory: SessionFactory) -> None:
    paris = timezone(timedelta(hours=1))
    member = Member(name="Zoé", created_at=datetime(2026, 1, 5, 9, 30, 15, 123456, tzinfo=paris))
    db.add(member)
    db.commit()
    with session_factory() as other:
        stored = other.get(Member, member.id)
        assert stored is not None
        assert stored.created_at.tzinfo is UTC
        assert stored.created_at == datetime(2026, 1, 5, 8, 30, 15, 123456, tzinfo=UTC)
        found = other.scalars(
            sa.select(Member).where(Member.created_at > datetime(2026, 1, 5, 8, 30, tzinfo=UTC))
        ).all()
        assert [m.id for m in found] == [member.id]


def test_naive_times_are_refused(db: Session) -> None:
    db.add(Member(name="Naive", created_at=datetime(2026, 1, 5, 9, 30)))
    with pytest.raises(StatementError, match="naive datetime"):
        db.flush()


def test_foreign_keys_are_enforced(db: Session) -> None:
    db.add(Badge(uid="ABCD", member_id=424242))
    with pytest.raises(IntegrityError):
        db.flush()


def test_badge_uids_are_stored_upper_case_and_checked(db: Session) -> None:
    member = Member(name="Kim")
    db.add(member)
    db.flush()
    badge = Badge(uid=" abcd1234 ", member_id=member.id)
    assert badge.uid == "ABCD1234"
    with pytest.raises(ValueError, match="hex"):
        Badge(uid="not-hex", member_id=member.id)


def test_sqlite_connections_are_set_up(tmp_path: object) -> None:
    engine: Engine = make_engine(f"sqlite:///{tmp_path}/pragmas.db")
    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("foreign_keys", "journal_mode", "busy_timeout", "synchronous")
        }
    engine.dispose()
    assert pragmas == {"foreign_keys": 1, "journal_mode": "wal", "busy_timeout": 5000, "synchronous": 1}


def test_postgresql_urls_use_the_shipped_driver() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"

"""A decision on PostgreSQL: two round trips, and still safe when its connection is dead.

:func:`server.access.decide` on a session of its own (as the MQTT lane calls it) reads in
autocommit and writes its log row as a transaction of its own, without checking the pooled
connection first: a connection found dead by the query is replaced and the decision made
again, once. Other uses of the engine check a connection only when it was idle a while.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from protocol.messages import AccessRequest, Reason
from server import access
from server import db as database
from server import workshop as manage
from server.access import decide
from server.clock import to_ms
from server.db import SessionFactory
from server.models import AccessDecision, Machine, SecondFactorConfirmation
from tests.server.conftest import NOW, Workshop

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

_taps = iter(range(1, 1_000_000))


def tap(sessions: SessionFactory, shop: Workshop, machine: str, badge: str) -> Any:
    request = AccessRequest(
        request_id=f"req-{next(_taps)}",
        machine=machine,
        badge=badge,
        sent_at_ms=to_ms(NOW),
        expires_at_ms=to_ms(NOW) + 2000,
    )
    with sessions() as db:  # a session of its own, as the MQTT lane's
        return decide(db, shop.site, shop.gateway, request, NOW, second_factor_window=timedelta(seconds=120))


def end_every_connection(engine: Engine) -> int:
    """What a restart of PostgreSQL does to the engine's pooled connections."""
    admin = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            ended = connection.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    return int(ended)


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, str]]]:
    """Each statement the engine sends, with psycopg's transaction status after it."""
    seen: list[tuple[str, str]] = []

    def after(connection: sa.Connection, cursor: Any, statement: str, *args: Any) -> None:
        status = connection.connection.driver_connection.info.transaction_status  # type: ignore[union-attr]
        seen.append((statement.split(None, 1)[0], status.name))

    event.listen(engine, "after_cursor_execute", after)
    yield seen
    event.remove(engine, "after_cursor_execute", after)


@pytest.fixture
def pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    seen: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        seen.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return seen


def logged(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(sa.select(AccessDecision.request_id).order_by(AccessDecision.id)))


def autocommit_in_the_pool(engine: Engine) -> bool:
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert isinstance(driver, psycopg.Connection)
        return driver.autocommit
    finally:
        raw.close()


def test_a_decision_is_its_query_and_its_log_row_and_no_more(
    engine: Engine,
    session_factory: SessionFactory,
    workshop: Workshop,
    statements: list[tuple[str, str]],
    pings: list[object],
) -> None:
    assert tap(session_factory, workshop, "sewing-1", workshop.alice_badge).granted
    # No BEGIN was sent before either (psycopg's status stays idle), no COMMIT after, no ping.
    assert statements == [("SELECT", "IDLE"), ("INSERT", "IDLE")]
    assert pings == []
    refused = tap(session_factory, workshop, "sewing-1", workshop.bob_badge)
    assert refused.reason is Reason.NOT_CERTIFIED
    assert statements[2:] == [("SELECT", "IDLE"), ("INSERT", "IDLE")]
    assert len(logged(engine)) == 2
    assert not autocommit_in_the_pool(engine)


def test_a_decision_survives_the_loss_of_every_connection(
    engine: Engine, session_factory: SessionFactory, workshop: Workshop, caplog: pytest.LogCaptureFixture
) -> None:
    assert tap(session_factory, workshop, "sewing-1", workshop.alice_badge).granted
    assert end_every_connection(engine) >= 1
    assert tap(session_factory, workshop, "sewing-1", workshop.alice_badge).granted
    assert "connection was lost" in caplog.text
    rows = logged(engine)
    assert len(rows) == len(set(rows)) == 2  # each decision logged, once
    assert not autocommit_in_the_pool(engine)


@pytest.fixture
def confirmed(db: Session, workshop: Workshop) -> Workshop:
    """sewing-1 wants a second factor, and Alice confirmed she is at it."""
    manage.set_second_factor(db, "sewing-1", True, now=NOW)
    machine_id = db.scalar(sa.select(Machine.id).where(Machine.slug == "sewing-1"))
    assert machine_id is not None
    db.add(SecondFactorConfirmation(member_id=workshop.alice, machine_id=machine_id, confirmed_at=NOW))
    db.commit()
    return workshop


def test_a_used_confirmation_and_its_log_row_commit_together(
    engine: Engine,
    session_factory: SessionFactory,
    confirmed: Workshop,
    monkeypatch: pytest.MonkeyPatch,
    statements: list[tuple[str, str]],
) -> None:
    workshop = confirmed
    statements.clear()
    # The log row fails: the confirmation the grant used must stay unused.
    broken = sa.insert(sa.table("access_decisions", sa.column("no_such_column"))).values(no_such_column=1)
    monkeypatch.setattr(access, "_LOG_ON_POSTGRESQL", broken)
    with pytest.raises(sa.exc.ProgrammingError):
        tap(session_factory, workshop, "sewing-1", workshop.alice_badge)
    assert [status for _, status in statements] == ["IDLE", "IDLE", "INTRANS"]  # the UPDATE began one
    with engine.connect() as connection:
        assert connection.scalar(sa.select(SecondFactorConfirmation.used_at)) is None
    assert not autocommit_in_the_pool(engine)
    monkeypatch.undo()
    assert tap(session_factory, workshop, "sewing-1", workshop.alice_badge).granted
    with engine.connect() as connection:
        assert connection.scalar(sa.select(SecondFactorConfirmation.used_at)) == NOW
    assert tap(session_factory, workshop, "sewing-1", workshop.alice_badge).reason is (
        Reason.SECOND_FACTOR_REQUIRED
    )
    assert not autocommit_in_the_pool(engine)


def test_other_uses_check_a_connection_idle_a_while(
    engine: Engine,
    session_factory: SessionFactory,
    workshop: Workshop,
    pings: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 3600.0)
    with session_factory() as db:
        assert db.scalar(sa.select(1)) == 1
    with session_factory() as db:  # used within the hour: trusted
        assert db.scalar(sa.select(1)) == 1
    assert pings == []
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", -1.0)  # every connection idle "long enough"
    assert end_every_connection(engine) >= 1
    with session_factory() as db:  # found dead by the check, replaced: no error
        assert db.scalar(sa.select(1)) == 1
    dead = pings[0]
    assert isinstance(dead, psycopg.Connection)
    assert dead.broken  # the pool's connection, ended above, and not used: replaced

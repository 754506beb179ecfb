"""The database: engine, sessions, the ORM base and schema upgrades.

SQLite is the embedded default and PostgreSQL the production database; the
same models and migrations serve both, and the tests run on both.
"""

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, event
from sqlalchemy.engine import CursorResult, Dialect, Engine, Result, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names that are the same on every database, so migrations can name them."""

SQLITE_BUSY_TIMEOUT_MS = 5000

BigPK = BigInteger().with_variant(Integer, "sqlite")
"""A 64-bit primary key; SQLite only auto-increments an ``INTEGER PRIMARY KEY``."""


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in time, always an aware UTC datetime in Python.

    Naive datetimes are refused: their zone would be a guess. SQLite has no
    time zones, so moments are stored there as naive UTC and made aware again
    when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def table(model: type[Base]) -> sa.Table:
    """The Table of ``model`` for Core statements (``__table__`` is typed as any FromClause)."""
    found = model.__table__
    if not isinstance(found, sa.Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return found


def normalise_url(url: str) -> sa.URL:
    """The URL with the driver we ship: ``postgresql://`` means psycopg 3, not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # SQLite leaves foreign keys unenforced unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL lets readers (the API) work while a writer (MQTT ingest) commits.
        cursor.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL survives a killed process (the fault we design for) and
        # saves an fsync per commit, which the per-tap decision log cannot afford.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with our SQLite manners applied to every connection."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = dict(kwargs.pop("connect_args", {}))
        # Connections are used by the MQTT thread and the API's thread pool in turn.
        connect_args.setdefault("check_same_thread", False)
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    engine = sa.create_engine(parsed, **kwargs)
    if "pool_pre_ping" not in kwargs:  # asked for (a benchmark): SQLAlchemy's own, or none
        _ping_idle_connections(engine)
    return engine


PING_AFTER_IDLE_S = 1.0
"""A pooled PostgreSQL connection idle longer than this is checked (an empty statement) before
use; one used more recently is trusted. (SQLAlchemy's ``pool_pre_ping`` checks at every checkout:
a round trip more for every operation.) A restart of the database leaves the connections idle at
least while it was down, so they are checked; one that dies within the second after its last use
(a restart quicker than that, an administrator ending backends) fails the one operation that uses
it, and the pool then replaces every connection opened before the failure. The decision checks
none: it retries on a new connection instead (:func:`server.access.decide`)."""

_IDLE_SINCE = "atelier_idle_since"
_unpinged = ContextVar("unpinged", default=False)


@contextlib.contextmanager
def unpinged_checkout() -> Iterator[None]:
    """Check connections out within this block without the idle check: for a caller that
    retries, on a fresh connection, a statement that finds its connection dead (the decision)."""
    token = _unpinged.set(True)
    try:
        yield
    finally:
        _unpinged.reset(token)


def _ping_idle_connections(engine: Engine) -> None:
    dialect = engine.dialect

    def stamp(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def check(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        since = record.info.get(_IDLE_SINCE)
        if _unpinged.get() or (since is not None and time.monotonic() - since <= PING_AFTER_IDLE_S):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            # The pool replaces this connection, and every other one opened before now (a
            # restarted database leaves them all dead), and checks out again.
            raise sa.exc.InvalidatePoolError(str(error)) from error

    event.listen(engine, "connect", stamp)  # new: used at once without a check
    event.listen(engine, "checkin", stamp)
    event.listen(engine, "checkout", check)


SessionFactory = sessionmaker[Session]


def make_session_factory(engine: Engine) -> SessionFactory:
    # Objects stay readable after commit: the API serialises them after committing.
    return sessionmaker(engine, expire_on_commit=False)


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT, UPDATE or DELETE touched (typed as a plain Result by Session.execute)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"no row count on {type(result).__name__}")
    return result.rowcount


MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """The Alembic configuration, built in code: no alembic.ini to find at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Config values go through ConfigParser interpolation, which treats '%' specially.
    config.set_main_option("sqlalchemy.url", normalise_url(url).render_as_string(False).replace("%", "%%"))
    return config


def _prepare_sqlite_for_migrations(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # Batch migrations rebuild tables (copy, drop, rename); enforced foreign keys
        # would cascade or fail on the drop. They are checked once at the end instead.
        dbapi_connection.execute("PRAGMA foreign_keys=OFF")
        # pysqlite commits before DDL on its own; take over BEGIN so that a failed
        # migration rolls back whole (the SQLAlchemy recipe for SQLite).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def make_migration_engine(url: str) -> Engine:
    """An engine whose connections are set up for migrating; dispose of it afterwards."""
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    if engine.dialect.name == "sqlite":
        _prepare_sqlite_for_migrations(engine)
    return engine


MIGRATION_LOCK = 0x61746C72  # "atlr": the PostgreSQL advisory lock taken while migrating
"""Several server processes started at once (scale-out) each upgrade the schema at start: on
PostgreSQL they take turns, and the later ones find it done (without the lock, two creating the
same table at once would fail). SQLite serialises writers on its own."""


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema of the database at ``url`` to ``revision`` (the latest by default)."""
    engine = make_migration_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Held until this transaction ends, which the whole migration runs in.
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            if sqlite:
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise RuntimeError(f"foreign key violations after migrating: {problems[:5]}")
    finally:
        engine.dispose()


class AppendOnly(RuntimeError):
    """An attempt to change or delete a record that may only be added to (a history, a trail)."""


B = TypeVar("B", bound=type[Base])


def append_only(model: B) -> B:
    """Make the ORM refuse to update or delete rows of ``model``: history is added to, never rewritten."""

    def refuse(mapper: Any, connection: Any, target: Any) -> None:
        raise AppendOnly(f"{model.__tablename__} {target.id} cannot be changed or deleted: it is history")

    event.listen(model, "before_update", refuse)
    event.listen(model, "before_delete", refuse)
    return model


def enum_type(enum: type[StrEnum], name: str) -> sa.Enum:
    """A portable enum column: a short string of the member values, with a CHECK.

    Not a native PostgreSQL enum, which SQLite does not have and whose values are
    awkward to change in a migration; the fixed length keeps a new value a small one.
    """
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )

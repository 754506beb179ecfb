"""Shared fixtures: a real Mosquitto, PostgreSQL and victoria-metrics for the whole run.

A service that cannot start makes the tests that need it fail with the reason:
nothing here skips.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.services import Mosquitto, Postgres, VictoriaMetrics, mosquitto, postgres, victoria_metrics


@pytest.fixture(scope="session")
def broker() -> Iterator[Mosquitto]:
    """One Mosquitto for the session; tests keep apart by using their own site id."""
    with mosquitto() as running:
        yield running


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    with postgres() as running:
        yield running


@pytest.fixture(scope="session")
def telemetry_store() -> Iterator[VictoriaMetrics]:
    """One victoria-metrics for the session; tests keep apart by their site id (a tag)."""
    with victoria_metrics() as running:
        yield running


_database_numbers = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, on SQLite and then on PostgreSQL: each test using it runs twice."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'atelier.db'}"
    server: Postgres = request.getfixturevalue("postgres_server")
    name = f"test_{next(_database_numbers)}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


_site_numbers = itertools.count(1)


@pytest.fixture
def site_id() -> str:
    """A site id of its own per test, so that tests sharing the broker never meet."""
    return f"test-{next(_site_numbers)}"

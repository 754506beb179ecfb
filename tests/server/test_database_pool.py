"""Each server process's pool of PostgreSQL connections is sized by its settings."""

from __future__ import annotations

import pytest
from sqlalchemy.pool import QueuePool

from server.app import create_app
from server.settings import Settings

NOWHERE = "postgresql+psycopg://atelier@127.0.0.1:1/atelier"  # never connected to here


def test_the_pool_has_the_size_the_settings_give(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_DATABASE_POOL_SIZE", "3")
    monkeypatch.setenv("ATELIER_DATABASE_MAX_OVERFLOW", "0")
    app = create_app(Settings(database_url=NOWHERE), mqtt=False, sweep=False)
    pool = app.state.engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (3, 0)


def test_by_default_five_and_ten_more_at_busy_moments() -> None:
    pool = create_app(Settings(database_url=NOWHERE), mqtt=False, sweep=False).state.engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (5, 10)


@pytest.mark.parametrize("variable", ["ATELIER_DATABASE_POOL_SIZE", "ATELIER_DATABASE_MAX_OVERFLOW"])
def test_a_negative_size_is_refused(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, "-1")
    with pytest.raises(ValueError, match=variable.removeprefix("ATELIER_").lower()):
        Settings()

"""Several server processes started at once on an empty PostgreSQL each migrate it, in turn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from server.db import make_engine
from tests.services import Postgres

ROOT = Path(__file__).resolve().parents[2]


def test_processes_upgrading_one_database_at_once_all_succeed(postgres_server: Postgres) -> None:
    admin = sa.create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text("CREATE DATABASE concurrent_upgrade"))
    admin.dispose()
    url = postgres_server.url.rsplit("/", 1)[0] + "/concurrent_upgrade"
    # Processes, as servers are: Alembic's context is global to a process, so threads would not do.
    code = "import sys; from server.db import upgrade_database; upgrade_database(sys.argv[1])"
    upgrades = [
        subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    failures = []
    for process in upgrades:
        _, errors = process.communicate(timeout=120)
        if process.returncode:
            failures.append(errors.decode(errors="replace")[-1000:])
    assert not failures, failures
    engine = make_engine(url)
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        tables = connection.execute(sa.text("SELECT count(*) FROM gateway_events")).scalar_one()
    engine.dispose()
    assert (len(versions), tables) == (1, 0)

"""Schemathesis against the API's own OpenAPI document: generated requests, valid and not, to
every operation, anonymous and as staff (a manager and treasurer with every scope). Whatever it
sends, the server answers without a server error (5xx)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from server import workshop as manage
from server.app import create_app
from server.db import make_engine, make_session_factory, upgrade_database
from server.settings import Settings
from tests.server.api.conftest import Headers, bearer
from tests.server.conftest import NOW


@pytest.fixture
def staff_api(tmp_path: Path) -> tuple[schemathesis.BaseSchema, Headers]:
    """The app on a SQLite database of its own (once is enough: the requests do not depend on
    the engine), and the headers of a manager and treasurer with every scope."""
    url = f"sqlite:///{tmp_path / 'schemathesis.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as db:
        staff = manage.add_member(db, "Sam Staff", now=NOW)
        manage.set_member_roles(db, staff.id, manager=True, treasurer=True)
        db.commit()
        headers = bearer(db, staff.id)
    engine.dispose()
    app = create_app(Settings(database_url=url, site="demo"), mqtt=False, sweep=False)
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app), headers


def test_no_generated_request_gets_a_server_error(staff_api: tuple[schemathesis.BaseSchema, Headers]) -> None:
    schema, staff_headers = staff_api
    failures: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document is invalid: {result}"
        operations.append(result.ok())
    assert len(operations) > 50

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: Any) -> None:  # a schemathesis.Case
            for headers in (None, staff_headers):
                try:
                    case.call_and_validate(headers=headers, checks=[not_a_server_error])
                except (AssertionError, FailureGroup) as error:  # every failing operation is reported at once
                    failures.append(f"{case.method} {case.formatted_path}: {str(error).splitlines()[0]}")

        check()
    assert failures == [], "\n".join(sorted(set(failures)))

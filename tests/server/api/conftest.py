"""An app without MQTT (nor expiry sweeps) on the test database, driven through TestClient.

``client`` is anonymous. ``staff_client`` is the same client acting, through an API token with
every scope, as a member who is both manager and treasurer: what a test of a management
route uses when who calls is not its subject (``test_authorization.py`` checks that).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server import workshop as manage
from server.app import create_app
from server.auth.scopes import EVERY_SCOPE, Scope
from server.auth.tokens import create_token
from server.settings import Settings
from tests.server.conftest import NOW

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str, site_id: str) -> Settings:
    return Settings(database_url=database_url, site=site_id)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings, mqtt=False, sweep=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def bearer(db: Session, member: int, scopes: Iterable[Scope] = EVERY_SCOPE) -> Headers:
    """Headers acting as ``member`` through a new API token."""
    issued = create_token(db, member, scopes=scopes, now=NOW, label="tests")
    db.commit()
    return {"Authorization": f"Bearer {issued.token}"}


@pytest.fixture
def staff(db: Session) -> int:
    """A member who is both manager and treasurer: Sam Staff."""
    member = manage.add_member(db, "Sam Staff", now=NOW)
    manage.set_member_roles(db, member.id, manager=True, treasurer=True)
    db.commit()
    return member.id


@pytest.fixture
def staff_client(client: TestClient, db: Session, staff: int) -> TestClient:
    """``client``, acting as :func:`staff` from now on."""
    client.headers.update(bearer(db, staff))
    return client

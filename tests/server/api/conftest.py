"""An app without MQTT on the test database, driven through TestClient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings


@pytest.fixture
def settings(database_url: str, site_id: str) -> Settings:
    return Settings(database_url=database_url, site=site_id)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, mqtt=False)) as client:
        yield client

"""An app without MQTT (nor expiry sweeps) on the test database, driven through TestClient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings


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

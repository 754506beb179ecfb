from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.api.deps import get_db
from server.app import create_app
from server.mqtt import MqttService
from server.settings import Settings
from tests.server.api.conftest import bearer
from tests.services import Mosquitto, free_port


def test_healthy_without_mqtt(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "mqtt": "disabled"}


def test_mqtt_connected(database_url: str, site_id: str, broker: Mosquitto) -> None:
    app = create_app(Settings(database_url=database_url, site=site_id, mqtt_url=broker.url))
    with TestClient(app) as client:
        service: MqttService = app.state.mqtt
        assert service.wait_until_ready(10)
        assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "mqtt": "connected"}
    assert not service.connected  # stopped with the app


def test_the_api_works_while_the_broker_is_unreachable(
    database_url: str, site_id: str, db: Session, staff: int
) -> None:
    settings = Settings(database_url=database_url, site=site_id, mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as client:
        body = client.get("/healthz").json()
        assert client.get("/api/v1/members", headers=bearer(db, staff)).status_code == 200
    assert body == {"status": "ok", "database": "ok", "mqtt": "disconnected"}


def test_database_unreachable(settings: Settings) -> None:
    app = create_app(settings, mqtt=False)

    def broken_db() -> Session:
        return Session(
            bind=create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none")).state.engine
        )

    app.dependency_overrides[get_db] = broken_db
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "error", "mqtt": "disabled"}


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/members", "/api/v1/sessions", "/api/v1/decisions", "/healthz"} <= set(spec["paths"])
    assert client.get("/api/v1/docs").status_code == 200

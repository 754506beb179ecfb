"""Telemetry settings: off without a URL, and the app runs the writer for as long as it runs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server.app import create_app
from server.settings import Settings
from server.telemetry import TelemetryWriter
from tests.services import VictoriaMetrics

NAMES = ("URL", "TOKEN", "ORG", "BUCKET", "BUFFER_POINTS", "FLUSH_INTERVAL_S", "TIMEOUT_S")


@pytest.fixture(autouse=True)
def _no_telemetry_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(f"ATELIER_TELEMETRY_{name}", raising=False)


def test_telemetry_is_off_by_default() -> None:
    settings = Settings()
    assert settings.telemetry_url is None
    assert (settings.telemetry_org, settings.telemetry_bucket, settings.telemetry_token) == (
        "atelier",
        "atelier",
        None,
    )
    assert (
        settings.telemetry_buffer_points,
        settings.telemetry_flush_interval_s,
        settings.telemetry_timeout_s,
    ) == (
        50_000,
        1.0,
        2.0,
    )


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_TELEMETRY_URL", " https://influx.example:8086 ")
    monkeypatch.setenv("ATELIER_TELEMETRY_TOKEN", "s3cret-token")
    monkeypatch.setenv("ATELIER_TELEMETRY_BUCKET", "lyon")
    monkeypatch.setenv("ATELIER_TELEMETRY_BUFFER_POINTS", "1000")
    settings = Settings()
    assert (settings.telemetry_url, settings.telemetry_bucket, settings.telemetry_buffer_points) == (
        "https://influx.example:8086",
        "lyon",
        1000,
    )
    assert settings.telemetry_token is not None
    assert settings.telemetry_token.get_secret_value() == "s3cret-token"
    assert "s3cret" not in repr(settings)


def test_an_empty_url_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_TELEMETRY_URL", "")
    assert Settings().telemetry_url is None


@pytest.mark.parametrize("url", ["influx.example:8086", "udp://influx.example", "http://", "ftp://x"])
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="telemetry URL must be http"):
        Settings(telemetry_url=url)


@pytest.mark.parametrize(
    ("name", "value"),
    [("telemetry_buffer_points", 0), ("telemetry_flush_interval_s", 0), ("telemetry_timeout_s", -1)],
)
def test_bounds_are_checked(name: str, value: float) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings.model_validate({name: value})


def test_the_app_runs_the_writer_only_when_a_store_is_set(
    telemetry_store: VictoriaMetrics, database_url: str, site_id: str
) -> None:
    assert create_app(Settings(database_url=database_url, site=site_id), mqtt=False).state.telemetry is None
    app = create_app(
        Settings(database_url=database_url, site=site_id, telemetry_url=telemetry_store.url), mqtt=False
    )
    writer: TelemetryWriter = app.state.telemetry
    assert (writer.url, writer.org, writer.bucket) == (telemetry_store.url, "atelier", "atelier")
    assert not writer.running
    with TestClient(app):
        assert writer.running
    assert not writer.running

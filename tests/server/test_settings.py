from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "MQTT_URL",
        "SITE",
        "MQTT_SHARED_GROUP",
        "HTTP_PORT",
        "LOG_LEVEL",
        "SUPERVISION_WINDOW_S",
        "EXPIRY_SWEEP_INTERVAL_S",
    ):
        monkeypatch.delenv(f"ATELIER_{name}", raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite:///atelier.db"
    assert settings.mqtt_url == "mqtt://127.0.0.1:1883"
    assert (settings.site, settings.mqtt_shared_group) == ("demo", None)
    assert (settings.http_host, settings.http_port, settings.log_level) == ("127.0.0.1", 8000, "INFO")
    assert settings.request_clock_tolerance_ms == 5000
    assert (settings.supervision_window_s, settings.expiry_sweep_interval_s) == (300, 3600)
    assert (settings.broker.host, settings.broker.port) == ("127.0.0.1", 1883)


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_SITE", "fablab-nord")
    monkeypatch.setenv("ATELIER_MQTT_URL", "mqtts://server:secret@broker.example:8883")
    monkeypatch.setenv("ATELIER_MQTT_SHARED_GROUP", "servers")
    monkeypatch.setenv("ATELIER_LOG_LEVEL", "debug")
    monkeypatch.setenv("ATELIER_HTTP_PORT", "8080")
    monkeypatch.setenv("ATELIER_SUPERVISION_WINDOW_S", "120")
    monkeypatch.setenv("ATELIER_EXPIRY_SWEEP_INTERVAL_S", "600")
    settings = Settings()
    assert (settings.site, settings.mqtt_shared_group, settings.log_level) == (
        "fablab-nord",
        "servers",
        "DEBUG",
    )
    assert settings.http_port == 8080
    assert (settings.supervision_window_s, settings.expiry_sweep_interval_s) == (120, 600)
    assert (settings.broker.tls, settings.broker.username, settings.broker.password) == (
        True,
        "server",
        "secret",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site", "Fablab Nord"),
        ("mqtt_url", "http://broker"),
        ("mqtt_shared_group", "$share"),
        ("log_level", "LOUD"),
        ("http_port", 0),
        ("request_clock_tolerance_ms", -1),
        ("supervision_window_s", 0),
        ("expiry_sweep_interval_s", 0),
    ],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({field: value})


def test_allowlist_and_clock_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SIGNING_KEY_FILE",
        "SIGNING_KEY_ID",
        "ALLOWLIST_REFRESH_S",
        "ALLOWLIST_TTL_S",
        "CLOCK_TOLERANCE_S",
    ):
        monkeypatch.delenv(f"ATELIER_{name}", raising=False)
    settings = Settings()
    assert (settings.signing_key_file, settings.signing_key_id) == (None, "site-1")
    assert (settings.allowlist_refresh_s, settings.allowlist_ttl_s) == (2.0, 7 * 86_400)
    assert settings.clock_tolerance_s == 120
    monkeypatch.setenv("ATELIER_SIGNING_KEY_FILE", "/etc/atelier/site.pem")
    monkeypatch.setenv("ATELIER_SIGNING_KEY_ID", "site-2026")
    monkeypatch.setenv("ATELIER_ALLOWLIST_REFRESH_S", "0.5")
    monkeypatch.setenv("ATELIER_ALLOWLIST_TTL_S", "86400")
    monkeypatch.setenv("ATELIER_CLOCK_TOLERANCE_S", "30")
    settings = Settings()
    assert str(settings.signing_key_file) == "/etc/atelier/site.pem"
    assert settings.signing_key_id == "site-2026"
    assert (settings.allowlist_refresh_s, settings.allowlist_ttl_s, settings.clock_tolerance_s) == (
        0.5,
        86_400,
        30,
    )
    monkeypatch.setenv("ATELIER_SIGNING_KEY_FILE", "")
    assert Settings().signing_key_file is None  # empty means unset


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIGNING_KEY_ID", "site 1"),
        ("SIGNING_KEY_ID", "x" * 33),
        ("ALLOWLIST_REFRESH_S", "0"),
        ("ALLOWLIST_TTL_S", "59"),
        ("CLOCK_TOLERANCE_S", "0"),
    ],
)
def test_bad_allowlist_and_clock_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"ATELIER_{name}", value)
    with pytest.raises(ValidationError):
        Settings()

"""Server configuration, read from ``ATELIER_*`` environment variables."""

import logging
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.mqtt import BrokerURL
from server.ids import Ident, KeyId


class Settings(BaseSettings):
    """Everything a server process needs to know; defaults suit a laptop demo."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///atelier.db"
    database_pool_size: Annotated[int, Field(ge=1, le=1000)] = 5
    """PostgreSQL: the connections each server process keeps open; with ``database_max_overflow``,
    what it may open at most. Several processes on a managed database: keep their sum within its
    connection limit (docs/operations.md)."""
    database_max_overflow: Annotated[int, Field(ge=0, le=1000)] = 10
    """PostgreSQL: connections opened beyond the pool at busy moments, closed once returned."""
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    site: Ident = "demo"
    """The site this server serves: only gateways registered for it are answered."""
    mqtt_shared_group: Ident | None = None
    """When set, subscribe through ``$share/<group>/...`` so several servers split the load:
    requests, events and telemetry are shared; gateway and machine states stay plain
    subscriptions, seen by every process (docs/operations.md, *Several server processes*)."""
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    log_level: str = "INFO"
    request_clock_tolerance_ms: Annotated[int, Field(ge=0)] = 5000
    """Access requests that expired longer ago than this are dropped unanswered:
    the gateway has stopped waiting, and the margin absorbs clock skew."""
    supervision_window_s: Annotated[int, Field(ge=1, le=86_400)] = 300
    """A member certified at the supervised level is let in only if a trainer for the
    skill was granted the same machine at most this many seconds before."""
    second_factor_window_s: Annotated[int, Field(ge=10, le=3600)] = 120
    """On a machine with a second factor, a member's confirmation in the web app ("I am at this
    machine") lets their badge in at most this many seconds later, once."""
    expiry_sweep_interval_s: Annotated[int, Field(ge=1)] = 3600
    """How often the server records the certifications that have expired (by date or by
    disuse); it also does so at start."""

    clock_tolerance_s: Annotated[int, Field(ge=1, le=86_400)] = 120
    """A usage session is flagged ``clock_suspect`` when its gateway's clock was off the
    server's by more than this, or its wall-clock span and its monotonic duration differ
    by more than this (the clock jumped mid-session)."""

    # Signing in to the web interface and the API (docs/security.md, section 4).
    session_lifetime_s: Annotated[int, Field(ge=300, le=30 * 86_400)] = 12 * 3600
    """A browser session ends this long after sign-in, however active."""
    session_idle_timeout_s: Annotated[int, Field(ge=60, le=30 * 86_400)] = 2 * 3600
    """... or after this long without a request."""
    cookie_secure: bool | None = None
    """True: session cookies are always ``Secure`` and named ``__Host-...`` (set it behind a
    TLS proxy). None: so when the request came over HTTPS (``X-Forwarded-Proto`` from a
    trusted proxy counts). False: never (plain-HTTP development only)."""
    login_failures_per_account: Annotated[int, Field(ge=1, le=1000)] = 5
    """Wrong passwords for one account within ``login_failure_window_s`` before sign-in is refused (429)."""
    login_failures_per_client: Annotated[int, Field(ge=1, le=10_000)] = 20
    """... and from one client address: higher, since a workshop's members share one public address."""
    login_failure_window_s: Annotated[int, Field(ge=1, le=86_400)] = 15 * 60

    # The signed allowlist each gateway decides from when the server does not answer.
    signing_key_file: Path | None = None
    """The site's Ed25519 private key (PEM, PKCS8, unencrypted), made by ``atelier keys
    create``. Unset: no allowlist is published, and gateways refuse when the server is out
    of reach."""
    signing_key_id: KeyId = "site-1"
    """The name gateways know the key's public half by (``allowlist_keys`` in their configuration)."""
    allowlist_refresh_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    """How often each gateway's snapshot is recomputed; it is published only when it changed."""
    allowlist_ttl_s: Annotated[int, Field(ge=60, le=366 * 86_400)] = 7 * 86_400
    """How long a snapshot is valid; it is issued again, unchanged, once half of this has passed."""

    # Telemetry to an InfluxDB-API store (InfluxDB 2.x, or victoria-metrics): off without a URL.
    telemetry_url: str | None = None
    """``http(s)://host:port`` of the store's write API; telemetry is only checked, not kept, without it."""
    telemetry_token: SecretStr | None = None
    """The store's API token (InfluxDB 1.8: ``user:password``); victoria-metrics needs none."""
    telemetry_org: str = "atelier"
    telemetry_bucket: str = "atelier"
    telemetry_buffer_points: Annotated[int, Field(ge=1, le=10_000_000)] = 50_000
    """Samples kept while the store is slow or down; beyond it the oldest are dropped (and counted)."""
    telemetry_flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    telemetry_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    """The longest a write may take; a slow store only ever delays the writer's own thread."""

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        BrokerURL.parse(value)  # raises a ValueError saying what is wrong
        return value

    @field_validator("telemetry_url", mode="before")
    @classmethod
    def _check_telemetry_url(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # an empty ATELIER_TELEMETRY_URL means off, as an unset one does
        if isinstance(value, str):
            parts = urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"telemetry URL must be http(s)://host[:port], not {value!r}")
            return value.strip()
        return value

    @field_validator("signing_key_file", "cookie_secure", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # e.g. an empty ATELIER_SIGNING_KEY_FILE means unset
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if not isinstance(logging.getLevelNamesMapping().get(level), int):
            raise ValueError(f"unknown log level {value!r}: use DEBUG, INFO, WARNING or ERROR")
        return level

    @property
    def broker(self) -> BrokerURL:
        return BrokerURL.parse(self.mqtt_url)

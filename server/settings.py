"""Server configuration, read from ``ATELIER_*`` environment variables."""

import logging
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.ids import Ident
from protocol.mqtt import BrokerURL


class Settings(BaseSettings):
    """Everything a server process needs to know; defaults suit a laptop demo."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///atelier.db"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    site: Ident = "demo"
    """The site this server serves: only gateways registered for it are answered."""
    mqtt_shared_group: Ident | None = None
    """When set, subscribe through ``$share/<group>/...`` so several servers split the load."""
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    log_level: str = "INFO"
    request_clock_tolerance_ms: Annotated[int, Field(ge=0)] = 5000
    """Access requests that expired longer ago than this are dropped unanswered:
    the gateway has stopped waiting, and the margin absorbs clock skew."""

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        BrokerURL.parse(value)  # raises a ValueError saying what is wrong
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

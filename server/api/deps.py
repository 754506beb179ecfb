"""Dependencies shared by the routes, as ``Annotated`` aliases.

Everything comes from ``app.state``, set by :func:`server.app.create_app`,
so there are no module globals; tests override :func:`get_db` or build an app
with their own settings. Who is calling, and what they may do, is
:mod:`server.auth.policy`.
"""

from collections.abc import Iterator
from typing import Annotated, NamedTuple

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from protocol.ids import ID_PATTERN
from server.clock import Clock, utc_now
from server.db import SessionFactory
from server.mqtt import MqttService
from server.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session_factory(request: Request) -> SessionFactory:
    factory: SessionFactory = request.app.state.session_factory
    return factory


def get_db(factory: Annotated[SessionFactory, Depends(get_session_factory)]) -> Iterator[Session]:
    """A session per request; what a route did not commit is rolled back."""
    with factory() as db:
        yield db


def get_mqtt(request: Request) -> MqttService | None:
    service: MqttService | None = request.app.state.mqtt
    return service


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MqttDep = Annotated[MqttService | None, Depends(get_mqtt)]


def get_clock(request: Request) -> Clock:
    """The server's clock; a test sets ``app.state.clock`` to a fixed one."""
    clock: Clock = getattr(request.app.state, "clock", utc_now)
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]

Slug = Annotated[str, Path(pattern=ID_PATTERN, description="a-z, 0-9 and '-', 1 to 64 characters")]
"""A skill, machine or gateway id in a path."""


class Page(NamedTuple):
    limit: int
    offset: int


def get_page(
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many items")] = 100,
    offset: Annotated[int, Query(ge=0, description="skip this many items first")] = 0,
) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(get_page)]

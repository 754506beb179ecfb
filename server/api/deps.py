"""Dependencies shared by the routes, as ``Annotated`` aliases.

Everything comes from ``app.state``, set by :func:`server.app.create_app`,
so there are no module globals; tests override :func:`get_db` or build an app
with their own settings.
"""

from collections.abc import Iterator
from typing import Annotated, NamedTuple

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from protocol.ids import ID_PATTERN
from server.auth.tokens import member_for_token
from server.clock import Clock, utc_now
from server.db import SessionFactory
from server.models import Member
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

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `atelier token create --member ID`: `Authorization: Bearer atl_...`.",
)


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def get_current_member(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)], db: SessionDep
) -> Member:
    """The member the request acts as, from its bearer token; 401 saying why when there is none."""
    if credentials is None:
        raise _unauthorised("Sign in: send your API token as 'Authorization: Bearer <token>'.")
    if credentials.scheme.lower() != "bearer":
        raise _unauthorised("Send your API token as 'Authorization: Bearer <token>'.")
    member = member_for_token(db, credentials.credentials)
    if member is None:
        raise _unauthorised("This API token is unknown or revoked: ask a manager for a new one.")
    return member


CurrentMember = Annotated[Member, Depends(get_current_member)]
"""The member calling, authenticated; routes check what their roles allow."""

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

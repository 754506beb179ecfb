"""Signing in and out of a browser session, who am I, and changing one's own password.

``POST /auth/login`` takes ``login`` (an e-mail or a member id) and ``password``, as JSON or
as a form (``curl -c jar -d login=... -d password=...``), and answers with the session
cookie and the session's CSRF token (:mod:`server.auth.csrf`). Failed attempts are limited
per account and per client address (:mod:`server.auth.ratelimit`): 429 with ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from server.api.deps import ClockDep, SessionDep, SettingsDep
from server.auth import passwords
from server.auth.policy import (
    PUBLIC,
    SECURE_SESSION_COOKIE,
    SESSION_COOKIE,
    Caller,
    SignedIn,
    SignedInAnyScope,
    SignedInSession,
    Via,
    cookie_secure,
)
from server.auth.ratelimit import LoginLimiter
from server.auth.scopes import EVERY_SCOPE, Scope
from server.auth.sessions import open_session, revoke_session, revoke_sessions
from server.auth.tokens import revoke_token
from server.models import Member

router = APIRouter(prefix="/auth", tags=["auth"])

log = logging.getLogger(__name__)

Password = Annotated[str, StringConstraints(min_length=1, max_length=passwords.MAX_LENGTH)]
WRONG = "Wrong e-mail, member id or password."


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
    """Your e-mail, or your member id."""
    password: Password


class SessionOut(BaseModel):
    member_id: int
    name: str
    roles: list[str]
    """``member``, and ``trainer``, ``treasurer``, ``manager`` as they apply."""
    via: str
    """``session`` (a signed-in browser) or ``token`` (an API token)."""
    scopes: list[str]
    """What the credential may do besides what the roles allow: every scope for a session."""
    csrf_token: str | None
    """Send it back with every POST, PUT, PATCH or DELETE of the session: header
    ``X-CSRF-Token`` or form field ``csrf_token``. None with an API token."""
    expires_at: datetime | None
    """When the session ends at the latest (or the token expires)."""


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Password
    new_password: Password


async def _login_body(request: Request) -> LoginIn:
    """The sign-in fields, from a JSON body or an HTML form; 422 saying what is wrong."""
    try:
        if "json" in request.headers.get("content-type", ""):
            data: Any = json.loads(await request.body())
        else:
            data = dict((await request.form()).items())
        return LoginIn.model_validate(data)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, error.errors(include_url=False)) from None
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "send login and password, as JSON or as a form"
        ) from None


def _limiter(request: Request) -> LoginLimiter:
    limiter: LoginLimiter = request.app.state.login_limiter
    return limiter


def _find_member(db: SessionDep, login: str) -> Member | None:
    if login.isdigit():
        return db.get(Member, int(login))
    found = db.scalars(
        sa.select(Member)
        .where(sa.func.lower(Member.email) == login.lower(), Member.erased_at.is_(None))
        .limit(2)
    ).all()
    # Members sharing an e-mail sign in with their member id: none of them is guessed.
    return found[0] if len(found) == 1 else None


def _client(request: Request) -> str:
    # Behind a reverse proxy, uvicorn puts the address from X-Forwarded-For here, for the
    # proxies it trusts (FORWARDED_ALLOW_IPS, by default 127.0.0.1).
    return request.client.host if request.client else "unknown"


@router.post(
    "/login",
    dependencies=[Depends(PUBLIC)],
    responses={401: {"description": WRONG}, 429: {"description": "too many failures: see Retry-After"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": LoginIn.model_json_schema()},
                "application/x-www-form-urlencoded": {"schema": LoginIn.model_json_schema()},
            },
        }
    },
)
def login(
    *,
    request: Request,
    response: Response,
    body: Annotated[LoginIn, Depends(_login_body)],
    db: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    limiter: Annotated[LoginLimiter, Depends(_limiter)],
) -> SessionOut:
    """Sign in: sets the session cookie (``__Host-atelier_session`` over HTTPS, else
    ``atelier_session``; HttpOnly, SameSite=Lax) and answers with the CSRF token."""
    member = _find_member(db, body.login)
    account = f"member:{member.id}" if member is not None else f"login:{body.login.lower()}"
    client = _client(request)
    wait = limiter.retry_after(account, client)
    if wait is not None:
        log.warning("sign-in refused, too many failures: %s from %s", account, client)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"Too many failed sign-ins: try again in {(wait + 59) // 60} minute(s).",
            headers={"Retry-After": str(wait)},
        )
    stored = member.password_hash if member is not None and member.erased_at is None else None
    if member is None or not passwords.verify_password(stored, body.password):
        limiter.failed(account, client)
        log.warning("sign-in failed: %s from %s", account, client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG)
    limiter.succeeded(account)
    now = clock()
    if stored is not None and passwords.needs_rehash(stored):
        member.password_hash = passwords.hash_password(body.password)
    opened = open_session(db, member, now=now, lifetime=timedelta(seconds=settings.session_lifetime_s))
    db.commit()
    secure = cookie_secure(request, settings)
    response.set_cookie(
        SECURE_SESSION_COOKIE if secure else SESSION_COOKIE,
        opened.token,
        max_age=settings.session_lifetime_s,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    roles = _roles_of(member, db, clock)
    return SessionOut(
        member_id=member.id, name=member.name, roles=roles, via=Via.SESSION, scopes=_all_scopes(),
        csrf_token=opened.row.csrf_token, expires_at=opened.row.expires_at,
    )  # fmt: skip


def _roles_of(member: Member, db: SessionDep, clock: ClockDep) -> list[str]:
    return [role.value for role in Caller(member, Via.SESSION, EVERY_SCOPE).roles(db, clock)]


def _all_scopes() -> list[str]:
    return [scope.value for scope in Scope]


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(caller: SignedInAnyScope, response: Response, db: SessionDep, clock: ClockDep) -> None:
    """End the session (and clear its cookie); with an API token, revoke that token."""
    if caller.session is not None:
        revoke_session(db, caller.session.id, now=clock())
    elif caller.token_id is not None:
        revoke_token(db, caller.token_id, now=clock(), by=caller.id)
    db.commit()
    for name in (SECURE_SESSION_COOKIE, SESSION_COOKIE):
        response.delete_cookie(
            name, path="/", secure=name == SECURE_SESSION_COOKIE, httponly=True, samesite="lax"
        )


@router.get("/me")
def session_info(caller: SignedIn, db: SessionDep, clock: ClockDep) -> SessionOut:
    """Who the request acts as, with which roles and scopes, and the session's CSRF token."""
    return SessionOut(
        member_id=caller.id,
        name=caller.member.name,
        roles=[role.value for role in caller.roles(db, clock)],
        via=caller.via,
        scopes=sorted(caller.scopes),
        csrf_token=caller.session.csrf_token if caller.session is not None else None,
        expires_at=caller.expires_at,
    )


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    *,
    body: PasswordChangeIn,
    caller: SignedInSession,
    request: Request,
    db: SessionDep,
    clock: ClockDep,
    limiter: Annotated[LoginLimiter, Depends(_limiter)],
) -> None:
    """Change your own password, giving the current one; your other sessions end."""
    account, client = f"member:{caller.id}", _client(request)
    wait = limiter.retry_after(account, client)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "Too many wrong passwords: try again later.",
            headers={"Retry-After": str(wait)},
        )  # fmt: skip
    if not passwords.verify_password(caller.member.password_hash, body.current_password):
        limiter.failed(account, client)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Your current password is not this one.")
    now = clock()
    passwords.set_password(db, caller.id, body.new_password, now=now, by=caller.id)
    revoke_sessions(db, caller.id, now=now, keep=caller.session.id if caller.session else None)
    db.commit()

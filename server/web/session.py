"""The web pages' side of signing in: who is browsing, with which roles, and their CSRF token.

A thin adapter over :mod:`server.auth` (sessions, roles, CSRF) so that the pages depend on
one module only. The pages are authenticated by the session cookie exactly as the API is
(:func:`server.auth.policy.authenticate`, CSRF included on every POST); what differs is
the answer when something is missing: a page redirects to the sign-in form, or says in
the reader's language which role it needs, instead of a JSON 401 or 403.

Every page route declares one :class:`WebPolicy` (a :class:`~server.auth.policy.Policy`,
so :func:`server.auth.policy.check_policies` sees it) or :data:`server.auth.policy.PUBLIC`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response, status
from pydantic import ValidationError

from server.api.deps import ClockDep, SessionDep, SettingsDep
from server.api.routes import auth as auth_routes
from server.auth.csrf import csrf_input, submitted_csrf
from server.auth.policy import PUBLIC, Caller, Policy, Role, authenticate
from server.clock import Clock
from server.settings import Settings

__all__ = [
    "PUBLIC",
    "Caller",
    "LoginRefused",
    "NotAllowed",
    "Role",
    "SignInRequired",
    "WebPolicy",
    "csrf_field",
    "sign_in",
    "sign_out",
]


class SignInRequired(Exception):
    """Not signed in (or the session ended): answered with a redirect to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class NotAllowed(Exception):
    """Signed in, without any of the roles a page needs; or a form without its CSRF token."""

    def __init__(self, roles: frozenset[Role], *, csrf: bool = False) -> None:
        super().__init__(", ".join(sorted(roles)))
        self.roles = roles
        self.csrf = csrf


def _path_of(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


class WebPolicy(Policy):
    """A page for members holding one of ``roles``, in a browser session."""

    def __init__(self, *roles: Role) -> None:
        if not roles:
            raise ValueError("name at least one role; a page open to anyone is PUBLIC")
        self.roles = frozenset(roles)
        self.scope = None
        self.session_only = True

    def __call__(
        self,
        request: Request,
        db: SessionDep,
        clock: ClockDep,
        settings: SettingsDep,
        csrf: Annotated[str | None, Depends(submitted_csrf)],
    ) -> Caller:
        try:
            caller = authenticate(
                request=request, credentials=None, csrf=csrf, db=db, clock=clock, settings=settings
            )
        except HTTPException as error:
            if error.status_code == status.HTTP_403_FORBIDDEN:
                raise NotAllowed(self.roles, csrf=True) from None
            back = _path_of(request) if request.method == "GET" else request.headers.get("referer", "/")
            raise SignInRequired(back) from None
        if not any(caller.has(role, db, clock) for role in self.roles):
            raise NotAllowed(self.roles)
        return caller

    def __repr__(self) -> str:
        return f"WebPolicy({'|'.join(role.value for role in Role if role in self.roles)})"


def policy(*roles: Role) -> object:
    return Depends(WebPolicy(*roles))


# The policies the pages use, as parameter types, mirroring the API's (server.auth.policy).
MemberUser = Annotated[Caller, policy(Role.MEMBER)]
TrainerUser = Annotated[Caller, policy(Role.TRAINER, Role.MANAGER)]
BillingUser = Annotated[Caller, policy(Role.TREASURER, Role.MANAGER)]
"""Reads the books; who pays (organisations) is changed by these too, as over the API."""
TreasurerUser = Annotated[Caller, policy(Role.TREASURER)]
ManagerUser = Annotated[Caller, policy(Role.MANAGER)]


def roles_of(caller: Caller, db: SessionDep, clock: Clock) -> frozenset[Role]:
    return frozenset(caller.roles(db, clock))


def csrf_field(request: Request) -> str:
    """The hidden ``csrf_token`` input every form that posts carries (HTML, already escaped)."""
    return csrf_input(request)


def sign_in_url(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='/')}"


class LoginRefused(Exception):
    """Wrong credentials (``wrong``), too many failures (``throttled``, with minutes), or a blank field."""

    def __init__(self, kind: str, minutes: int = 0) -> None:
        super().__init__(kind)
        self.kind = kind
        self.minutes = minutes


def sign_in(
    request: Request,
    response: Response,
    login: str,
    password: str,
    *,
    db: SessionDep,
    clock: ClockDep,
    settings: Settings,
) -> None:
    """Sign in through the API's own sign-in (same checks, limits and cookie): the cookie is
    set on ``response``; :class:`LoginRefused` says why not."""
    try:
        body = auth_routes.LoginIn(login=login, password=password)
    except ValidationError:
        raise LoginRefused("blank") from None
    try:
        auth_routes.login(
            request=request, response=response, body=body, db=db, clock=clock, settings=settings,
            limiter=request.app.state.login_limiter,
        )  # fmt: skip
    except HTTPException as error:
        if error.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
            wait = int((error.headers or {}).get("Retry-After", "60"))
            raise LoginRefused("throttled", (wait + 59) // 60) from None
        raise LoginRefused("wrong") from None


def sign_out(caller: Caller, response: Response, *, db: SessionDep, clock: ClockDep) -> None:
    """End the session and clear its cookie, as ``POST /api/v1/auth/logout`` does."""
    auth_routes.logout(caller, response, db, clock)

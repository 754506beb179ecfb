"""Who may call what: one dependency family, declared on every route.

Every route of the API carries exactly one *policy*: :data:`PUBLIC`, or a :class:`Require`
naming the roles that may call it, the token scope it needs and whether only a browser
session may. :func:`check_policies` refuses to build an app with a route that has none,
and ``tests/server/api/test_authorization.py`` calls every route as every role.

Roles (:class:`Role`): every signed-in member is a *member*; a *trainer* holds a valid
trainer-level certification in at least one skill (what they may certify is then checked
per skill, by :mod:`server.training.rules`); *treasurer* and *manager* are flags on the
member. The staff roles (all but member) count only while the membership is active.

A caller is authenticated by an API token (``Authorization: Bearer atl_...``) or by the
session cookie of a sign-in (:mod:`server.auth.sessions`), the token first. With the
cookie, an unsafe method also needs the session's CSRF token (:mod:`server.auth.csrf`).
Without either: 401. Authenticated but not allowed: 403, saying what was missing.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from server.api.deps import ClockDep, SessionDep, SettingsDep
from server.auth.csrf import CSRF_FIELD, CSRF_HEADER, SAFE_METHODS, submitted_csrf
from server.auth.scopes import EVERY_SCOPE, Scope, effective
from server.auth.sessions import find_session
from server.auth.tokens import find_token
from server.clock import Clock
from server.models import Member, MemberStatus, WebSession
from server.settings import Settings
from server.training.rules import trained_skills

SESSION_COOKIE = "atelier_session"
SECURE_SESSION_COOKIE = "__Host-atelier_session"
"""Over HTTPS: the ``__Host-`` prefix makes browsers refuse the cookie unless it is Secure,
for the whole host (``Path=/``) and set by the host itself (no ``Domain``)."""


class Role(StrEnum):
    MEMBER = "member"
    TRAINER = "trainer"
    TREASURER = "treasurer"
    MANAGER = "manager"


class Via(StrEnum):
    TOKEN = "token"  # noqa: S105 - a kind of credential, not one
    SESSION = "session"


@dataclass
class Caller:
    """Who a request acts as, and through what."""

    member: Member
    via: Via
    scopes: frozenset[Scope]
    token_id: int | None = None
    session: WebSession | None = None
    expires_at: datetime | None = None
    """When the credential stops working at the latest (None: a token without expiry)."""
    _trainer: bool | None = field(default=None, repr=False)

    @property
    def id(self) -> int:
        return self.member.id

    def has(self, role: Role, db: Session, clock: Clock) -> bool:
        if role is Role.MEMBER:
            return True
        if self.member.status is not MemberStatus.ACTIVE:
            return False
        if role is Role.MANAGER:
            return self.member.is_manager
        if role is Role.TREASURER:
            return self.member.is_treasurer
        if self._trainer is None:
            self._trainer = bool(trained_skills(db, self.member.id, clock()))
        return self._trainer

    def roles(self, db: Session, clock: Clock) -> list[Role]:
        return [role for role in Role if self.has(role, db, clock)]


def cookie_secure(request: Request, settings: Settings) -> bool:
    """Whether session cookies are Secure (and ``__Host-``): by setting, else by the request's scheme."""
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    return request.url.scheme == "https"


def session_cookie(request: Request, settings: Settings) -> str | None:
    """The session token the request's cookie carries; only the ``__Host-`` one when cookies must be Secure."""
    value = request.cookies.get(SECURE_SESSION_COOKIE)
    if value is None and not settings.cookie_secure:
        value = request.cookies.get(SESSION_COOKIE)
    return value


_bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `atelier token create --member ID --scope ...`: "
    "`Authorization: Bearer atl_...`.",
)


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


NOT_SIGNED_IN = (
    "Sign in: POST /api/v1/auth/login for a session cookie, "
    "or send an API token as 'Authorization: Bearer <token>'."
)
BAD_TOKEN = "This API token is unknown, expired or revoked: ask a manager for a new one."  # noqa: S105
BAD_SESSION = "Your session has ended (signed out, expired or idle too long): sign in again."
BAD_CSRF = (
    f"This request needs the session's CSRF token, in the {CSRF_HEADER} header or a {CSRF_FIELD} "
    "form field: it is in the sign-in answer and in GET /api/v1/auth/me."
)


def authenticate(
    *,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    csrf: Annotated[str | None, Depends(submitted_csrf)],
    db: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> Caller:
    """The caller of a request, from its API token or else its session cookie; 401 saying why."""
    now = clock()
    authorization = request.headers.get("Authorization")
    if credentials is not None or authorization:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorised("Send your API token as 'Authorization: Bearer <token>'.")
        found = find_token(db, credentials.credentials, now)
        if found is None:
            raise _unauthorised(BAD_TOKEN)
        token, member = found
        scopes = effective(Scope(s) for s in token.scopes.split())
        caller = Caller(member, Via.TOKEN, scopes, token_id=token.id, expires_at=token.expires_at)
    else:
        cookie = session_cookie(request, settings)
        if cookie is None:
            raise _unauthorised(NOT_SIGNED_IN)
        opened = find_session(
            db, cookie, now=now, idle_timeout=timedelta(seconds=settings.session_idle_timeout_s)
        )
        if opened is None:
            raise _unauthorised(BAD_SESSION)
        session, member = opened
        if request.method not in SAFE_METHODS and not (
            csrf is not None and hmac.compare_digest(csrf.encode(), session.csrf_token.encode())
        ):
            raise _forbidden(BAD_CSRF)
        # The session's last_seen_at, if it moved, is kept even when the route saves nothing.
        db.commit()
        caller = Caller(member, Via.SESSION, EVERY_SCOPE, session=session, expires_at=session.expires_at)
    request.state.caller = caller
    return caller


class Policy:
    """What a route declares about its callers; see :class:`Require` and :data:`PUBLIC`."""

    public = False
    roles: frozenset[Role] = frozenset()
    scope: Scope | None = None
    session_only = False


class Public(Policy):
    """Anyone, signed in or not: health, metrics, signing in."""

    public = True

    def __call__(self) -> None:
        return None

    def __repr__(self) -> str:
        return "PUBLIC"


PUBLIC = Public()


class Require(Policy):
    """Callers with one of ``roles``; with an API token, one whose scopes cover ``scope``
    (None: any scope does, e.g. signing out); ``session_only``: not with an API token at all."""

    def __init__(self, *roles: Role, scope: Scope | None, session_only: bool = False) -> None:
        if not roles:
            raise ValueError("name at least one role; a route open to anyone is PUBLIC")
        self.roles = frozenset(roles)
        self.scope = scope
        self.session_only = session_only

    def __call__(
        self, caller: Annotated[Caller, Depends(authenticate)], db: SessionDep, clock: ClockDep
    ) -> Caller:
        if self.session_only and caller.via is not Via.SESSION:
            raise _forbidden("Only a signed-in session may do this, not an API token: sign in first.")
        if not any(caller.has(role, db, clock) for role in self.roles):
            raise _forbidden(self._needs())
        if self.scope is not None and self.scope not in caller.scopes:
            held = " ".join(sorted(caller.scopes)) or "none"
            raise _forbidden(
                f"This API token's scopes ({held}) do not include {self.scope}: "
                f"ask a manager for one made with --scope {self.scope}."
            )
        return caller

    def _needs(self) -> str:
        if Role.MEMBER in self.roles:
            return "Your account may not do this."
        names = [role.value for role in Role if role in self.roles]
        if len(names) == 1:
            return f"This needs the {names[0]} role."
        return f"This needs one of the roles {', '.join(names)}."

    def __repr__(self) -> str:
        roles = "|".join(role.value for role in Role if role in self.roles)
        extra = ", session only" if self.session_only else ""
        return f"Require({roles}, scope={self.scope}{extra})"


def _policy(*roles: Role, scope: Scope | None, session_only: bool = False) -> object:
    return Depends(Require(*roles, scope=scope, session_only=session_only))


# The policies the routes use, as parameter types; each route takes exactly one.
SignedIn = Annotated[Caller, _policy(Role.MEMBER, scope=Scope.READ)]
"""Any member, to read (their own records, the catalogue of skills, machines and prices)."""
SignedInAnyScope = Annotated[Caller, _policy(Role.MEMBER, scope=None)]
"""Any member, with a token of any scope: signing out."""
SignedInSession = Annotated[Caller, _policy(Role.MEMBER, scope=None, session_only=True)]
"""Any member, in a browser session only: changing their own password."""
StaffRead = Annotated[Caller, _policy(Role.TRAINER, Role.TREASURER, Role.MANAGER, scope=Scope.READ)]
"""The members' directory: trainers find whom to certify, treasurers whom to bill."""
TrainerRead = Annotated[Caller, _policy(Role.TRAINER, Role.MANAGER, scope=Scope.READ)]
TrainerWrite = Annotated[Caller, _policy(Role.TRAINER, Role.MANAGER, scope=Scope.TRAINING)]
"""Certify and revoke; which skills, :mod:`server.training.rules` checks."""
BillingRead = Annotated[Caller, _policy(Role.TREASURER, Role.MANAGER, scope=Scope.READ)]
"""Invoices, balances, usage, sales, organisations: the treasurer, and the manager who runs the place."""
TreasurerWrite = Annotated[Caller, _policy(Role.TREASURER, scope=Scope.BILLING)]
"""Prices, plans and consumables: the treasurer only."""
BillingWrite = Annotated[Caller, _policy(Role.TREASURER, Role.MANAGER, scope=Scope.BILLING)]
"""Who pays (organisations, partners) and sales at the desk: treasurer or manager."""
ManagerRead = Annotated[Caller, _policy(Role.MANAGER, scope=Scope.READ)]
ManagerWrite = Annotated[Caller, _policy(Role.MANAGER, scope=Scope.MANAGE)]


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)


def policy_of(dependant: Dependant) -> Policy | None:
    """The policy a route's dependencies declare; a ValueError if they declare more than one."""
    found = {id(d.call): d.call for d in _dependants(dependant) if isinstance(d.call, Policy)}
    if len(found) > 1:
        raise ValueError(f"{len(found)} policies declared on one route: {list(found.values())}")
    policy = next(iter(found.values()), None)
    return policy if isinstance(policy, Policy) else None


@dataclass(frozen=True)
class DeclaredPolicy:
    methods: frozenset[str]
    path: str
    policy: Policy | None


def declared_policies(app: FastAPI) -> list[DeclaredPolicy]:
    """Every API route of ``app`` (with the path and dependencies it is served with) and its policy."""
    found = []
    for context in fastapi_routing.iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            methods = frozenset(context.methods or ())
            found.append(DeclaredPolicy(methods, str(context.path), policy_of(context.dependant)))
    return found


def check_policies(app: FastAPI) -> None:
    """Refuse an app with a route whose callers nobody decided: every route declares one policy."""
    missing = [f"{sorted(d.methods)} {d.path}" for d in declared_policies(app) if d.policy is None]
    if missing:
        raise RuntimeError(f"routes without a policy (server.auth.policy): {', '.join(missing)}")

"""The authorization matrix: every API route, called as every role and without credentials.

``EXPECTED`` is the one table of who may call what. It must name every API route the app serves
(a new route without a row fails here, as one without a policy fails ``create_app``), and
each row must be the policy the route actually declares. Then every route is called: with no
credentials (401), and as a member, a trainer, a treasurer and a manager, each through an API
token and through a signed-in session cookie (with its CSRF token for unsafe methods): 403
for a role the row does not name, anything but 401 and 403 for one it does. Tokens lacking
the row's scope, sessions without the CSRF token and tokens on session-only routes are
refused too. Unsafe calls send ``{}`` and name records that do not exist, so that an allowed
call is refused for its body (422) or its record (404) and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server import workshop as manage
from server.auth.passwords import set_password
from server.auth.policy import (
    BAD_CSRF,
    NOT_SIGNED_IN,
    SESSION_COOKIE,
    Public,
    Require,
    Role,
    check_policies,
    declared_policies,
)
from server.auth.scopes import EVERY_SCOPE, Scope
from server.auth.sessions import open_session
from server.models import Certification, CertificationLevel, Member
from tests.server.api.conftest import bearer
from tests.server.conftest import NOW, Workshop

MEMBER, TRAINER, TREASURER, MANAGER = Role.MEMBER, Role.TRAINER, Role.TREASURER, Role.MANAGER
READ, TRAINING, BILLING, MANAGE = Scope.READ, Scope.TRAINING, Scope.BILLING, Scope.MANAGE
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Expect:
    roles: frozenset[Role] | None
    """None: public."""
    scope: Scope | None = None
    session_only: bool = False


PUBLIC = Expect(None)


def allow(*roles: Role, scope: Scope | None, session_only: bool = False) -> Expect:
    return Expect(frozenset(roles), scope, session_only)


EVERYONE = (MEMBER,)
STAFF = (TRAINER, TREASURER, MANAGER)
TRAINERS = (TRAINER, MANAGER)
BILLING_STAFF = (TREASURER, MANAGER)

EXPECTED: dict[str, Expect] = {
    # signing in and out
    "POST /api/v1/auth/login": PUBLIC,
    "POST /api/v1/auth/logout": allow(*EVERYONE, scope=None),
    "GET /api/v1/auth/me": allow(*EVERYONE, scope=READ),
    "POST /api/v1/auth/password": allow(*EVERYONE, scope=None, session_only=True),
    # a member's own records
    "GET /api/v1/me": allow(*EVERYONE, scope=READ),
    "GET /api/v1/me/certifications": allow(*EVERYONE, scope=READ),
    "GET /api/v1/me/decisions": allow(*EVERYONE, scope=READ),
    "GET /api/v1/me/sessions": allow(*EVERYONE, scope=READ),
    "GET /api/v1/me/invoices": allow(*EVERYONE, scope=READ),
    "GET /api/v1/me/invoices/{number}.pdf": allow(*EVERYONE, scope=READ),
    "GET /api/v1/me/export": allow(*EVERYONE, scope=READ),
    # the catalogue every member reads
    "GET /api/v1/skills": allow(*EVERYONE, scope=READ),
    "GET /api/v1/skills/{slug}": allow(*EVERYONE, scope=READ),
    "GET /api/v1/machines": allow(*EVERYONE, scope=READ),
    "GET /api/v1/machines/{slug}": allow(*EVERYONE, scope=READ),
    "GET /api/v1/price-lists": allow(*EVERYONE, scope=READ),
    "GET /api/v1/price-lists/{code}/versions": allow(*EVERYONE, scope=READ),
    "GET /api/v1/price-lists/{code}/applicable": allow(*EVERYONE, scope=READ),
    "GET /api/v1/plans": allow(*EVERYONE, scope=READ),
    "GET /api/v1/consumables": allow(*EVERYONE, scope=READ),
    # training
    "GET /api/v1/certifications": allow(*TRAINERS, scope=READ),
    "GET /api/v1/certifications/{certification_id}": allow(*TRAINERS, scope=READ),
    "POST /api/v1/training/certifications": allow(*TRAINERS, scope=TRAINING),
    "POST /api/v1/training/certifications/{certification_id}/revoke": allow(*TRAINERS, scope=TRAINING),
    "GET /api/v1/training/certifications/{certification_id}/events": allow(*EVERYONE, scope=READ),
    "GET /api/v1/training/trainees": allow(*TRAINERS, scope=READ),
    "GET /api/v1/training/expiring": allow(*TRAINERS, scope=READ),
    # the members' directory, and managing members
    "GET /api/v1/members": allow(*STAFF, scope=READ),
    "GET /api/v1/members/{member_id}": allow(*STAFF, scope=READ),
    "POST /api/v1/members": allow(MANAGER, scope=MANAGE),
    "PATCH /api/v1/members/{member_id}": allow(MANAGER, scope=MANAGE),
    "PUT /api/v1/members/{member_id}/password": allow(MANAGER, scope=MANAGE),
    "GET /api/v1/members/{member_id}/export": allow(MANAGER, scope=READ),
    "POST /api/v1/members/{member_id}/erase": allow(MANAGER, scope=MANAGE),
    # the workshop: managers
    "GET /api/v1/badges": allow(MANAGER, scope=READ),
    "POST /api/v1/badges": allow(MANAGER, scope=MANAGE),
    "GET /api/v1/badges/{uid}": allow(MANAGER, scope=READ),
    "PATCH /api/v1/badges/{uid}": allow(MANAGER, scope=MANAGE),
    "POST /api/v1/skills": allow(MANAGER, scope=MANAGE),
    "PATCH /api/v1/skills/{slug}": allow(MANAGER, scope=MANAGE),
    "POST /api/v1/machines": allow(MANAGER, scope=MANAGE),
    "PATCH /api/v1/machines/{slug}/lockout": allow(MANAGER, scope=MANAGE),
    "PATCH /api/v1/machines/{slug}/second-factor": allow(MANAGER, scope=MANAGE),
    "GET /api/v1/gateways": allow(MANAGER, scope=READ),
    "POST /api/v1/gateways": allow(MANAGER, scope=MANAGE),
    "GET /api/v1/gateways/{slug}": allow(MANAGER, scope=READ),
    "GET /api/v1/decisions": allow(MANAGER, scope=READ),
    "GET /api/v1/audit": allow(MANAGER, scope=READ),
    # usage and the books: treasurer and managers read
    "GET /api/v1/sessions": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/sessions/{session_id}": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/reports/utilisation": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/invoices": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/invoices/{number}": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/invoices/{number}.pdf": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/balances": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/plan-subscriptions": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/consumable-sales": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/organisations": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/organisations/{organisation_id}": allow(*BILLING_STAFF, scope=READ),
    "GET /api/v1/partner-members": allow(*BILLING_STAFF, scope=READ),
    # prices: the treasurer alone changes them
    "POST /api/v1/price-lists": allow(TREASURER, scope=BILLING),
    "POST /api/v1/price-lists/{code}/versions": allow(TREASURER, scope=BILLING),
    "POST /api/v1/plans": allow(TREASURER, scope=BILLING),
    "POST /api/v1/plan-subscriptions": allow(TREASURER, scope=BILLING),
    "POST /api/v1/consumables": allow(TREASURER, scope=BILLING),
    "PATCH /api/v1/consumables/{code}": allow(TREASURER, scope=BILLING),
    # who pays, and sales at the desk: treasurer or manager
    "POST /api/v1/consumable-sales": allow(*BILLING_STAFF, scope=BILLING),
    "POST /api/v1/organisations": allow(*BILLING_STAFF, scope=BILLING),
    "PUT /api/v1/organisations/{organisation_id}/members/{member_id}": allow(*BILLING_STAFF, scope=BILLING),
    "DELETE /api/v1/organisations/{organisation_id}/members/{member_id}": allow(
        *BILLING_STAFF, scope=BILLING
    ),
    "PUT /api/v1/partner-members/{member_id}": allow(*BILLING_STAFF, scope=BILLING),
    "DELETE /api/v1/partner-members/{member_id}": allow(*BILLING_STAFF, scope=BILLING),
    # outside the API: health and metrics
    "GET /healthz": PUBLIC,
    "GET /metrics": PUBLIC,
}

DOCS = {"/api/v1/openapi.json", "/api/v1/docs", "/docs/oauth2-redirect"}
"""FastAPI's own pages (not API routes): public."""

ROW_RULES = {
    # Its member, a trainer for its skill or a manager: the treasurer is none of them here.
    "GET /api/v1/training/certifications/{certification_id}/events": {"member", "trainer", "manager"},
}
"""Routes whose records say more than the role: who of ``people`` is allowed with the records used below."""

HELD = {
    "member": {MEMBER},
    "trainer": {MEMBER, TRAINER},
    "treasurer": {MEMBER, TREASURER},
    "manager": {MEMBER, MANAGER},
}


def _key(methods: frozenset[str], path: str) -> str:
    (method,) = methods
    return f"{method} {path}"


def _is_api(route: str) -> bool:
    """The REST API and what lives beside it (health, metrics); the web pages have tests of their own."""
    path = route.split(" ", 1)[1]
    return path.startswith("/api/") or path in ("/healthz", "/metrics")


def test_every_route_declares_the_expected_policy(app: FastAPI) -> None:
    declared = {_key(d.methods, d.path): d.policy for d in declared_policies(app)}
    assert all(policy is not None for policy in declared.values())  # the web pages' too
    api = {route: policy for route, policy in declared.items() if _is_api(route)}
    assert set(api) == set(EXPECTED), "an API route was added or removed: give it a row in EXPECTED"
    for route, policy in api.items():
        expected = EXPECTED[route]
        if expected.roles is None:
            assert isinstance(policy, Public), route
        else:
            assert isinstance(policy, Require), route
            assert (policy.roles, policy.scope, policy.session_only) == (
                expected.roles,
                expected.scope,
                expected.session_only,
            ), route
    others = {
        route.path
        for route in app.routes
        if hasattr(route, "path")
        and not isinstance(route, APIRoute)
        and route.path.startswith(("/api/", "/docs"))
    }
    assert others == DOCS


def test_an_app_with_a_route_without_policy_is_refused(app: FastAPI) -> None:
    @app.get("/api/v1/forgotten")
    def forgotten() -> None:
        return None

    with pytest.raises(RuntimeError, match=r"\['GET'\] /api/v1/forgotten"):
        check_policies(app)


@dataclass
class Person:
    role: str
    member_id: int
    token: dict[str, str]
    cookie: str
    csrf: str


@pytest.fixture
def people(client: TestClient, db: Session, workshop: Workshop) -> dict[str, Person]:
    """A member (Alice), a trainer (Tess), a treasurer and a manager, each signed in and with a token."""
    treasurer = manage.add_member(db, "Théo Trésorier", now=NOW).id
    manage.set_member_roles(db, treasurer, treasurer=True)
    manager = manage.add_member(db, "Manon Manager", now=NOW).id
    manage.set_member_roles(db, manager, manager=True)
    ids = {"member": workshop.alice, "trainer": workshop.trainer, "treasurer": treasurer, "manager": manager}
    for member_id in ids.values():
        set_password(db, member_id, f"password of {member_id}", now=NOW, by=None)
    db.commit()
    found = {}
    for role, member_id in ids.items():
        answer = client.post(
            "/api/v1/auth/login", data={"login": str(member_id), "password": f"password of {member_id}"}
        )
        assert answer.status_code == 200, answer.text
        assert set(answer.json()["roles"]) == {role.value for role in HELD[role]}
        cookie = answer.cookies[SESSION_COOKIE]
        client.cookies.clear()
        found[role] = Person(role, member_id, bearer(db, member_id), cookie, answer.json()["csrf_token"])
    return found


def _concrete(route: str, db: Session, workshop: Workshop) -> tuple[str, str]:
    """The route's method and a URL for it: real records to read, missing ones to change."""
    method, path = route.split(" ", 1)
    certification = db.scalars(
        sa.select(Certification.id).where(Certification.member_id == workshop.alice)
    ).first()
    if method in UNSAFE:
        values = {"member_id": "999999", "organisation_id": "999999", "certification_id": "999999",
                  "uid": "FFFFFFFF", "slug": "no-such", "code": "no-such", "number": "2026-999999",
                  "session_id": "no-such"}  # fmt: skip
    else:
        slug = {"skills": "industrial-sewing", "machines": "sewing-1", "gateways": workshop.gateway}
        values = {"member_id": str(workshop.alice), "organisation_id": "999999",
                  "certification_id": str(certification), "uid": workshop.alice_badge,
                  "slug": slug.get([*path.split("/"), "", "", ""][3], ""), "code": "standard", "number": "2026-000001",
                  "session_id": "no-such"}  # fmt: skip
    url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
    if route == "GET /api/v1/price-lists/{code}/applicable":
        url += "?on=2026-03-02"
    return method, url


def _call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    client.cookies.clear()
    if method in UNSAFE:
        return client.request(method, url, json={}, headers=headers)
    return client.request(method, url, headers=headers)


def _with_cookie(person_cookie: str, csrf: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"{SESSION_COOKIE}={person_cookie}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return headers


def _fresh(db: Session, person: Person, via: str) -> dict[str, str]:
    """New credentials of ``person`` for a call that ends them (signing out)."""
    if via == "token":
        return bearer(db, person.member_id)
    member = db.get(Member, person.member_id)
    assert member is not None
    opened = open_session(db, member, now=NOW, lifetime=timedelta(hours=1))
    db.commit()
    return _with_cookie(opened.token, opened.row.csrf_token)


def test_every_route_as_every_role(
    client: TestClient, app: FastAPI, db: Session, workshop: Workshop, people: dict[str, Person]
) -> None:
    app.state.clock = lambda: NOW + timedelta(minutes=1)
    checked = 0
    for route, expected in EXPECTED.items():
        method, url = _concrete(route, db, workshop)
        anonymous = _call(client, method, url, {})
        if expected.roles is None:
            assert anonymous.status_code not in (401, 403), (route, anonymous.text)
            continue
        assert anonymous.status_code == 401, (route, anonymous.text)
        assert anonymous.json()["detail"] == NOT_SIGNED_IN
        for role, person in people.items():
            rule = ROW_RULES.get(route)
            may = role in rule if rule is not None else bool(HELD[role] & expected.roles)
            fresh = route == "POST /api/v1/auth/logout"
            via_token = _call(client, method, url, _fresh(db, person, "token") if fresh else person.token)
            if may and not expected.session_only:
                assert via_token.status_code not in (401, 403), (route, role, via_token.text)
            else:
                assert via_token.status_code == 403, (route, role, via_token.text)
            csrf = person.csrf if method in UNSAFE else None
            cookie = _fresh(db, person, "session") if fresh else _with_cookie(person.cookie, csrf)
            via_session = _call(client, method, url, cookie)
            if may:
                assert via_session.status_code not in (401, 403), (route, role, via_session.text)
            else:
                assert via_session.status_code == 403, (route, role, via_session.text)
            checked += 2
    assert checked == 2 * 4 * sum(1 for e in EXPECTED.values() if e.roles is not None)


@pytest.fixture
def everyone(db: Session, workshop: Workshop) -> int:
    """A member with every role: manager, treasurer, and trainer (industrial sewing)."""
    member = manage.add_member(db, "Ada Tout", now=NOW).id
    manage.set_member_roles(db, member, manager=True, treasurer=True)
    manage.grant_certification(db, member, "industrial-sewing", level=CertificationLevel.TRAINER, now=NOW)
    db.commit()
    return member


def test_a_token_does_only_what_its_scopes_allow(
    client: TestClient, app: FastAPI, db: Session, workshop: Workshop, everyone: int
) -> None:
    app.state.clock = lambda: NOW + timedelta(minutes=1)
    reader = bearer(db, everyone, {READ})
    for route, expected in EXPECTED.items():
        if expected.roles is None or expected.session_only:
            continue
        method, url = _concrete(route, db, workshop)
        # Signing out with a token revokes it: that call gets a token of its own.
        read_only = _call(client, method, url, bearer(db, everyone, {READ}) if "logout" in route else reader)
        if expected.scope in (None, READ):
            assert read_only.status_code not in (401, 403), (route, read_only.text)
            continue
        assert read_only.status_code == 403, (route, read_only.text)
        assert f"do not include {expected.scope}" in read_only.json()["detail"]
        others = bearer(db, everyone, EVERY_SCOPE - {expected.scope})
        assert _call(client, method, url, others).status_code == 403, route
        own = _call(client, method, url, bearer(db, everyone, {expected.scope}))
        assert own.status_code not in (401, 403), (route, own.text)


def test_every_unsafe_call_of_a_session_needs_its_csrf_token(
    client: TestClient, app: FastAPI, db: Session, workshop: Workshop, everyone: int
) -> None:
    app.state.clock = lambda: NOW + timedelta(minutes=1)
    member = db.get(Member, everyone)
    assert member is not None
    opened = open_session(db, member, now=NOW, lifetime=timedelta(hours=12))
    db.commit()
    for route, expected in EXPECTED.items():
        method, url = _concrete(route, db, workshop)
        if expected.roles is None or method not in UNSAFE:
            continue
        for csrf in (None, "wrong", opened.row.csrf_token[:-1]):
            refused = _call(client, method, url, _with_cookie(opened.token, csrf))
            assert refused.status_code == 403, (route, csrf, refused.text)
            assert refused.json()["detail"] == BAD_CSRF

"""Signing in: argon2 passwords, session cookies, CSRF, idle and absolute expiry, signing out,
changing a password, and the limit on failed attempts; on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from types import SimpleNamespace

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.requests import Request

from server import workshop as manage
from server.app import create_app
from server.auth.csrf import csrf_input
from server.auth.passwords import set_password
from server.auth.policy import BAD_CSRF, BAD_SESSION, BAD_TOKEN, SECURE_SESSION_COOKIE, SESSION_COOKIE
from server.auth.ratelimit import LoginLimiter
from server.auth.scopes import Scope
from server.auth.tokens import create_token
from server.models import AuditEntry, Member, MemberStatus, WebSession
from server.settings import Settings
from tests.server.api.conftest import bearer
from tests.server.conftest import NOW, Workshop

PASSWORD = "a long enough passphrase"  # noqa: S105 - a test's
Clock = Callable[[], datetime]


class Time:
    """The app's clock, moved by the test."""

    def __init__(self, app: FastAPI) -> None:
        self.now = NOW
        app.state.clock = lambda: self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def time(app: FastAPI) -> Time:
    return Time(app)


@pytest.fixture
def tess(db: Session, workshop: Workshop) -> int:
    """The trainer, with an e-mail (tess@example.org) and a password."""
    set_password(db, workshop.trainer, PASSWORD, now=NOW, by=None)
    db.commit()
    return workshop.trainer


def sign_in(client: TestClient, login: str, password: str = PASSWORD, **options: object) -> httpx.Response:
    return client.post("/api/v1/auth/login", data={"login": login, "password": password}, **options)  # type: ignore[arg-type]


def test_sign_in_with_e_mail_or_id_as_form_or_json(client: TestClient, tess: int, time: Time) -> None:
    answer = sign_in(client, "Tess@Example.org ")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["member_id"], body["name"], body["via"]) == (tess, "Tess Trainer", "session")
    assert body["roles"] == ["member", "trainer"]
    assert body["scopes"] == ["read", "training", "billing", "manage"]
    assert len(body["csrf_token"]) > 30
    assert body["expires_at"].startswith("2026-03-02T22:00:00")  # 12 hours
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP: development only
    me = client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["csrf_token"] == body["csrf_token"]
    assert client.get("/api/v1/me").json()["id"] == tess
    client.cookies.clear()
    by_id = client.post("/api/v1/auth/login", json={"login": str(tess), "password": PASSWORD})
    assert by_id.status_code == 200
    assert by_id.json()["csrf_token"] != body["csrf_token"]


def test_over_https_the_cookie_is_secure_and_host_only(app: FastAPI, tess: int, time: Time) -> None:
    with TestClient(app, base_url="https://atelier.example") as client:
        answer = sign_in(client, str(tess))
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{SECURE_SESSION_COOKIE}=")
        assert "Secure" in cookie
        assert "Domain" not in cookie
        assert client.get("/api/v1/auth/me").status_code == 200
    # Behind a TLS proxy that does not say so, ATELIER_COOKIE_SECURE=true insists.
    forced = create_app(
        Settings(database_url=str(app.state.settings.database_url), cookie_secure=True), mqtt=False
    )
    forced.state.clock = app.state.clock
    with TestClient(forced) as client:
        answer = sign_in(client, str(tess))
        assert answer.headers["set-cookie"].startswith(f"{SECURE_SESSION_COOKIE}=")
        # Nor is a plain cookie of the same session accepted there.
        token = answer.cookies[SECURE_SESSION_COOKIE]
        client.cookies.clear()
        plain = client.get("/api/v1/auth/me", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
        assert plain.status_code == 401


def test_wrong_credentials_are_one_answer(
    client: TestClient, db: Session, tess: int, workshop: Workshop
) -> None:
    wrong = "Wrong e-mail, member id or password."
    for login, password in (
        ("tess@example.org", "not the password"),
        ("nobody@example.org", PASSWORD),
        (str(workshop.bob), PASSWORD),  # Bob has no password
        ("999999", PASSWORD),
    ):
        answer = sign_in(client, login, password)
        assert (answer.status_code, answer.json()["detail"]) == (401, wrong), login
        assert "set-cookie" not in answer.headers
    # Two members sharing an e-mail sign in with their member id.
    manage.update_member(db, workshop.bob, email="TESS@example.org")
    set_password(db, workshop.bob, PASSWORD, now=NOW, by=None)
    db.commit()
    assert sign_in(client, "tess@example.org").status_code == 401
    assert sign_in(client, str(workshop.bob)).status_code == 200
    for body in (
        {},
        {"login": "x"},
        {"login": "", "password": "x"},
        {"login": "x", "password": "y", "more": 1},
    ):
        assert client.post("/api/v1/auth/login", json=body).status_code == 422, body
    assert (
        client.post(
            "/api/v1/auth/login", content=b"{nope", headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )


def test_unsafe_requests_of_a_session_need_its_csrf_token(
    client: TestClient, tess: int, time: Time, workshop: Workshop
) -> None:
    csrf = sign_in(client, str(tess)).json()["csrf_token"]
    path = "/api/v1/training/certifications"
    body = {"member_id": workshop.bob, "skill": "industrial-sewing"}
    missing = client.post(path, json=body)
    assert (missing.status_code, missing.json()["detail"]) == (403, BAD_CSRF)
    assert client.post(path, json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    made = client.post(path, json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    # An HTML form sends it as a field; reads need none.
    assert client.get("/api/v1/me").status_code == 200
    signed_out = client.post("/api/v1/auth/logout", data={"csrf_token": csrf})
    assert signed_out.status_code == 204


def test_a_session_ends_when_idle_when_expired_or_signed_out(
    client: TestClient, db: Session, tess: int, time: Time
) -> None:
    sign_in(client, str(tess))
    time.advance(hours=1, minutes=59)
    assert client.get("/api/v1/auth/me").status_code == 200  # and this request keeps it alive
    time.advance(hours=1, minutes=59)
    assert client.get("/api/v1/auth/me").status_code == 200
    time.advance(hours=2)
    idle = client.get("/api/v1/auth/me")
    assert (idle.status_code, idle.json()["detail"]) == (401, BAD_SESSION)

    client.cookies.clear()
    sign_in(client, str(tess))
    for _ in range(6):
        time.advance(hours=1, minutes=50)
        assert client.get("/api/v1/auth/me").status_code == 200
    time.advance(hours=1, minutes=50)  # 12 h 50 after signing in: past its lifetime, however active
    assert client.get("/api/v1/auth/me").status_code == 401

    client.cookies.clear()
    answer = sign_in(client, str(tess))
    cookie = answer.cookies[SESSION_COOKIE]
    out = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": answer.json()["csrf_token"]})
    assert out.status_code == 204
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    replayed = client.get("/api/v1/auth/me", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert replayed.status_code == 401
    db.rollback()
    rows = db.scalars(sa.select(WebSession).where(WebSession.member_id == tess).order_by(WebSession.id)).all()
    assert len(rows) == 3
    assert rows[-1].revoked_at is not None
    assert all(len(row.token_hash) == 64 and cookie not in row.token_hash for row in rows)


def test_signing_out_with_a_token_revokes_it(client: TestClient, db: Session, workshop: Workshop) -> None:
    headers = bearer(db, workshop.alice, {Scope.READ})
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    gone = client.get("/api/v1/me", headers=headers)
    assert (gone.status_code, gone.json()["detail"]) == (401, BAD_TOKEN)


def test_changing_ones_password(client: TestClient, db: Session, tess: int, time: Time) -> None:
    other = TestClient(client.app)
    sign_in(other, str(tess))
    csrf = sign_in(client, str(tess)).json()["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    change = {"current_password": "not it at all", "new_password": "another passphrase"}
    wrong = client.post("/api/v1/auth/password", json=change, headers=headers)
    assert (wrong.status_code, wrong.json()["detail"]) == (403, "Your current password is not this one.")
    weak = client.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=headers
    )
    assert weak.status_code == 422
    assert "at least 10 characters" in weak.json()["detail"]
    done = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another passphrase"},
        headers=headers,
    )
    assert done.status_code == 204, done.text
    assert client.get("/api/v1/auth/me").status_code == 200  # this session goes on
    assert other.get("/api/v1/auth/me").status_code == 401  # the others end
    client.cookies.clear()
    assert sign_in(client, str(tess)).status_code == 401
    assert sign_in(client, str(tess), "another passphrase").status_code == 200
    # Not with an API token: a leaked token must not take the account over.
    token = bearer(db, tess)
    assert client.post("/api/v1/auth/password", json=change, headers=token).status_code == 403
    db.rollback()
    entry = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "member.password")).all()[-1]
    assert (entry.actor_id, entry.subject_id, entry.details) == (tess, str(tess), {"self": True})
    member = db.get(Member, tess)
    assert member is not None
    assert member.password_hash is not None
    assert member.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_a_manager_sets_a_password(
    client: TestClient, db: Session, tess: int, staff: int, time: Time
) -> None:
    other = TestClient(client.app)
    sign_in(other, str(tess))
    headers = bearer(db, staff)
    path = f"/api/v1/members/{tess}/password"
    assert client.put(path, json={"password": "short"}, headers=headers).status_code == 422
    assert client.put(path, json={"password": "a new one for Tess"}, headers=headers).status_code == 204
    assert other.get("/api/v1/auth/me").status_code == 401
    assert sign_in(client, str(tess), "a new one for Tess").status_code == 200
    assert (
        client.put(
            "/api/v1/members/999999/password", json={"password": "long enough!"}, headers=headers
        ).status_code
        == 404
    )


def test_a_suspended_manager_signs_in_as_a_member_only(
    client: TestClient, db: Session, workshop: Workshop, time: Time
) -> None:
    manage.set_member_roles(db, workshop.carol, manager=True)  # Carol is suspended
    set_password(db, workshop.carol, PASSWORD, now=NOW, by=None)
    db.commit()
    answer = sign_in(client, str(workshop.carol))
    assert answer.json()["roles"] == ["member"]
    assert client.get("/api/v1/me/certifications").status_code == 200
    refused = client.get("/api/v1/members")
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        "This needs one of the roles trainer, treasurer, manager.",
    )
    manage.set_member_status(db, workshop.carol, MemberStatus.ACTIVE)
    db.commit()
    assert client.get("/api/v1/members").status_code == 200


def test_failed_sign_ins_are_limited_per_account_and_per_address(app: FastAPI, tess: int, time: Time) -> None:
    clock = [0.0]
    app.state.login_limiter = LoginLimiter(
        per_account=5, per_client=20, window_s=900, monotonic=lambda: clock[0]
    )
    with TestClient(app) as client:
        for _ in range(5):
            assert sign_in(client, "tess@example.org", "wrong guess").status_code == 401
        limited = sign_in(client, str(tess))  # the right password, but too late: not even checked
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "901"
        assert "try again in 16 minute(s)" in limited.json()["detail"]
        clock[0] = 600.0
        assert sign_in(client, "tess@example.org").headers["retry-after"] == "301"
        clock[0] = 901.0
        assert sign_in(client, "tess@example.org").status_code == 200  # a success clears the account
        for _ in range(4):
            assert sign_in(client, str(tess), "wrong").status_code == 401
        assert sign_in(client, str(tess)).status_code == 200
        # From one address, many accounts: 20 failures in the window, counting the 4 above.
        for number in range(16):
            assert sign_in(client, f"someone{number}@example.org", "guess").status_code == 401
        assert sign_in(client, "someone-else@example.org", "guess").status_code == 429
        assert sign_in(client, str(tess)).status_code == 429  # from this address, for now


def test_limiter_alone() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_account=2, per_client=3, window_s=60, monotonic=lambda: now[0], max_keys=4)
    assert limiter.retry_after("a", "ip") is None
    limiter.failed("a", "ip")
    now[0] = 10
    limiter.failed("a", "ip")
    assert limiter.retry_after("a", "ip") == 51
    assert limiter.retry_after("b", "other-ip") is None
    now[0] = 61
    assert limiter.retry_after("a", "ip") is None
    # Many accounts tried: old counts are forgotten rather than kept without bound.
    for number in range(10):
        limiter.failed(f"x{number}", f"ip{number}")
    assert len(limiter._failures) <= 6


def test_the_csrf_field_for_templates() -> None:
    request = Request({"type": "http", "headers": [], "state": {}})
    assert csrf_input(request) == ""  # no session, no field (and the form is refused anyway)
    request.state.caller = SimpleNamespace(session=SimpleNamespace(csrf_token='a"<b'))  # noqa: S106
    assert csrf_input(request) == '<input type="hidden" name="csrf_token" value="a&quot;&lt;b">'


def test_who_a_token_acts_as(client: TestClient, db: Session, workshop: Workshop, time: Time) -> None:
    issued = create_token(
        db, workshop.trainer, scopes={Scope.TRAINING}, now=NOW, expires_at=NOW + timedelta(days=7)
    )
    db.commit()
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {issued.token}"}).json()
    assert me == {
        "member_id": workshop.trainer,
        "name": "Tess Trainer",
        "roles": ["member", "trainer"],
        "via": "token",
        "scopes": ["read", "training"],
        "csrf_token": None,
        "expires_at": "2026-03-09T10:00:00Z",
    }

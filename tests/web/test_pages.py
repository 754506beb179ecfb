"""Every page, as each role, in both languages, on SQLite and PostgreSQL (no browser): it renders,
says everything from the catalogue, refuses whoever may not see it, and its forms need the
session's CSRF token."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server import workshop
from server.models import Badge, Machine, SecondFactorConfirmation
from tests.web.conftest import csrf_of, sign_in
from tests.web.workshop import WebWorkshop

MEMBER_PAGES = ["/me", "/me/sessions", "/live"]
TRAINER_PAGES = ["/training"]
BILLING_PAGES = [
    "/billing",
    "/billing/prices",
    "/billing/close",
    "/billing/invoices",
    "/billing/payments",
    "/billing/exports",
    "/billing/report",
    "/manage/organisations",
]
MANAGER_PAGES = ["/manage", "/manage/badges", "/manage/machines"]


def _check_page(client: TestClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, f"{path}: {answer.status_code}"
    assert "⟦" not in answer.text, f"{path} shows a key missing from the catalogue"
    return answer.text


def test_a_stranger_is_sent_to_sign_in(client: TestClient) -> None:
    for path in MEMBER_PAGES + TRAINER_PAGES + BILLING_PAGES + MANAGER_PAGES:
        answer = client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=")
    assert client.get("/login").status_code == 200


@pytest.mark.parametrize("language", ["fr", "en"])
def test_each_role_sees_its_pages_in_both_languages(
    client: TestClient, web_workshop: WebWorkshop, language: str
) -> None:
    sign_in(client, web_workshop.manager, language)
    for path in MEMBER_PAGES + TRAINER_PAGES + BILLING_PAGES + MANAGER_PAGES:
        html = _check_page(client, path)
        assert f'<html lang="{language}">' in html
    _check_page(client, f"/manage/members/{web_workshop.member.member_id}")
    _check_page(client, f"/training?member={web_workshop.member.member_id}")
    client.cookies.clear()
    sign_in(client, web_workshop.treasurer, language)
    for path in MEMBER_PAGES + BILLING_PAGES:
        _check_page(client, path)


def test_a_member_may_not_see_the_staff_pages(client: TestClient, web_workshop: WebWorkshop) -> None:
    sign_in(client, web_workshop.member)
    for path in MEMBER_PAGES:
        _check_page(client, path)
    for path in TRAINER_PAGES + BILLING_PAGES + MANAGER_PAGES:
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "Accès refusé" in answer.text
    # The treasurer reads the books but does not manage members.
    client.cookies.clear()
    sign_in(client, web_workshop.treasurer)
    assert client.get("/manage").status_code == 403


def test_the_language_follows_the_browser_then_the_switch(
    client: TestClient, web_workshop: WebWorkshop
) -> None:
    assert 'lang="en"' in client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"}).text
    assert 'lang="fr"' in client.get("/login", headers={"Accept-Language": "de-DE,fr;q=0.4"}).text
    switched = client.get("/lang/en", params={"next": "/login"})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/login"
    assert 'lang="en"' in client.get("/login", headers={"Accept-Language": "fr"}).text
    # Only paths of this site are followed back.
    assert client.get("/lang/fr", params={"next": "https://evil.example/"}).headers["location"] == "/"


def test_a_wrong_password_is_said_and_no_session_opens(client: TestClient, web_workshop: WebWorkshop) -> None:
    answer = client.post("/login", data={"login": web_workshop.member.login, "password": "not the password"})
    assert answer.status_code == 401
    assert "incorrect" in answer.text
    assert client.get("/me").status_code == 303


def test_a_form_without_the_csrf_token_changes_nothing(
    client: TestClient, web_app: FastAPI, web_workshop: WebWorkshop
) -> None:
    sign_in(client, web_workshop.manager)
    answer = client.post("/manage/machines/sew-1/lockout", data={"locked_out": "true", "reason": "test"})
    assert answer.status_code == 403
    assert "expiré" in answer.text
    with web_app.state.session_factory() as db:
        assert db.scalar(sa.select(Machine.locked_out).where(Machine.slug == "sew-1")) is False
    token = csrf_of(client, "/manage/machines")
    answer = client.post(
        "/manage/machines/sew-1/lockout", data={"locked_out": "true", "reason": "test", "csrf_token": token}
    )
    assert answer.status_code == 303
    with web_app.state.session_factory() as db:
        assert db.scalar(sa.select(Machine.locked_out).where(Machine.slug == "sew-1")) is True


def test_a_member_confirms_being_at_a_second_factor_machine(
    client: TestClient, web_app: FastAPI, web_workshop: WebWorkshop
) -> None:
    sign_in(client, web_workshop.member)
    assert "/me/at-machine/" not in client.get("/me").text  # no machine asks for it yet
    with web_app.state.session_factory() as db:
        workshop.set_second_factor(db, "sew-1", True)
        db.commit()
    token = csrf_of(client, "/me")
    assert 'action="/me/at-machine/sew-1"' in client.get("/me").text
    # As every form: nothing without the CSRF token.
    assert client.post("/me/at-machine/sew-1").status_code == 403
    answer = client.post("/me/at-machine/sew-1", data={"csrf_token": token})
    assert answer.status_code == 303
    with web_app.state.session_factory() as db:
        confirmations = db.scalars(sa.select(SecondFactorConfirmation)).all()
        assert [(c.member_id, c.used_at) for c in confirmations] == [(web_workshop.member.member_id, None)]
        machine = db.scalar(sa.select(Machine.id).where(Machine.slug == "sew-1"))
        assert confirmations[0].machine_id == machine
    # A machine that asks for nothing takes no confirmation.
    refused = client.post("/me/at-machine/no-such", data={"csrf_token": token}, follow_redirects=False)
    assert refused.status_code == 303
    with web_app.state.session_factory() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(SecondFactorConfirmation)) == 1


def test_a_member_downloads_their_own_invoices_only(client: TestClient, web_workshop: WebWorkshop) -> None:
    sign_in(client, web_workshop.member)
    html = client.get("/me").text
    number = html.split("/me/invoices/", 1)[1].split(".pdf", 1)[0]
    pdf = client.get(f"/me/invoices/{number}.pdf", params={"lang": "en"})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    client.cookies.clear()
    sign_in(client, web_workshop.trainer)
    assert client.get(f"/me/invoices/{number}.pdf").status_code == 404


def test_the_treasurer_closes_a_month_and_exports_it(
    client: TestClient, web_app: FastAPI, web_workshop: WebWorkshop
) -> None:
    sign_in(client, web_workshop.treasurer)
    token = csrf_of(client, "/billing/close")
    started = client.post("/billing/close", data={"period": web_workshop.open_period, "csrf_token": token})
    assert started.status_code == 303, started.text
    job = started.headers["location"]
    assert job.startswith("/billing/close/")
    deadline = time.monotonic() + 30
    while 'data-phase="done"' not in (progress := client.get(f"{job}/progress").text):
        assert 'data-phase="failed"' not in progress, progress
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "3 facture(s)" in progress  # Chloé, Amina and Hugo
    # The progress counted every invoice the close wrote, as many as it expected.
    job_state = web_app.state.web.closes.get(job.rsplit("/", 1)[1])
    assert job_state is not None
    assert job_state.expected_invoices == job_state.written == job_state.invoices == 3
    assert job_state.expected_sessions == job_state.sessions == 5
    invoices = client.get("/billing/invoices", params={"period": web_workshop.open_period}).text
    assert "Chloé Bernard" in invoices
    # The same month again is refused, and said so.
    again = client.post("/billing/close", data={"period": web_workshop.open_period, "csrf_token": token})
    assert again.status_code == 303
    assert again.headers["location"] == "/billing/close"
    assert "déjà clôturé" in client.get("/billing/close").text
    made = client.post(
        "/billing/exports/sepa", data={"period": web_workshop.open_period, "csrf_token": token}
    )
    assert made.status_code == 303
    exports = client.get("/billing/exports").text
    assert "Fichier SEPA ATELIER-" in exports
    message_id = exports.split("/billing/exports/sepa/", 1)[1].split(".xml", 1)[0]
    assert b"pain.008" in client.get(f"/billing/exports/sepa/{message_id}.xml").content
    fec = client.get("/billing/exports/fec", params={"period": web_workshop.open_period})
    assert fec.status_code == 200
    assert fec.content.startswith(b"JournalCode")
    csv = client.get("/billing/exports/csv", params={"period": web_workshop.open_period, "lang": "en"})
    assert csv.status_code == 200
    assert b"Chlo" in csv.content


def test_the_manager_enrols_the_badge_just_tapped(
    client: TestClient, web_app: FastAPI, web_workshop: WebWorkshop
) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from protocol.messages import Reason  # noqa: PLC0415
    from server.models import AccessDecision  # noqa: PLC0415
    from tests.web.workshop import UNKNOWN_BADGE  # noqa: PLC0415

    with web_app.state.session_factory() as db:
        db.add(
            AccessDecision(
                at=datetime.now(UTC),
                request_id="tap",
                gateway_slug="textile",
                machine_slug="sew-1",
                badge_uid=UNKNOWN_BADGE,
                member_id=None,
                granted=False,
                reason=Reason.UNKNOWN_BADGE.value,
            )
        )
        db.commit()
    sign_in(client, web_workshop.manager)
    page = client.get("/manage/badges").text
    assert UNKNOWN_BADGE in page
    token = csrf_of(client, "/manage/badges")
    answer = client.post(
        "/manage/badges",
        data={"uid": UNKNOWN_BADGE, "member_id": str(web_workshop.newcomer), "csrf_token": token},
    )
    assert answer.status_code == 303
    with web_app.state.session_factory() as db:
        assert (
            db.scalar(sa.select(Badge.member_id).where(Badge.uid == UNKNOWN_BADGE)) == web_workshop.newcomer
        )
    assert 'id="unknown-badge" data-uid' not in client.get("/manage/badges").text


def test_the_close_progress_shows_how_far_it_is() -> None:
    from datetime import date  # noqa: PLC0415

    from starlette.requests import Request  # noqa: PLC0415

    from server.web.jobs import CloseJob, Phase  # noqa: PLC0415
    from server.web.render import fragment  # noqa: PLC0415

    request = Request(
        {"type": "http", "method": "GET", "path": "/", "headers": [(b"accept-language", b"en")]}
    )
    job = CloseJob("j", "2026-10", date(2026, 11, 2), 1, expected_sessions=900, expected_invoices=5)
    reading = fragment(request, "billing/_close_progress.html", {"job": job})
    assert "data-running" in reading
    assert "<progress" in reading
    assert "value=" not in reading.split("<progress", 1)[1].split(">", 1)[0]  # not known yet: indeterminate
    job.phase, job.written = Phase.WRITING, 2
    writing = fragment(request, "billing/_close_progress.html", {"job": job})
    assert 'value="40"' in writing
    assert "2 of 5 invoice(s) written, for 900 session(s) to rate" in writing
    job.phase, job.error = Phase.FAILED, "error.period_closed"
    failed = fragment(request, "billing/_close_progress.html", {"job": job})
    assert "data-running" not in failed
    assert "This month is closed already." in failed

"""The web tests' fixtures: the real app served by uvicorn on a free port, a seeded workshop,
and headless Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make system-packages``); no
browser is ever downloaded. A test that cannot start it fails, saying so: nothing skips.
The browser tests run on SQLite; the pages' server-side tests (:mod:`test_pages`) run on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize, sync_playwright

from server.app import create_app
from server.clock import utc_now
from server.db import make_engine, make_session_factory, upgrade_database
from server.settings import Settings
from tests.server.conftest import db, engine, session_factory, workshop  # noqa: F401 - fixtures, shared
from tests.services import Postgres
from tests.web.workshop import PASSWORD, Account, WebWorkshop, seed

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
"""Where ``ATELIER_SCREENSHOTS=1`` makes the browser tests save the main pages."""

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


@dataclass(frozen=True)
class Served:
    url: str
    app: FastAPI
    workshop: WebWorkshop
    database_url: str


def seeded_database(url: str, site: str) -> WebWorkshop:
    upgrade_database(url)
    made = make_engine(url)
    try:
        with make_session_factory(made)() as session:
            return seed(session, site, utc_now())
    finally:
        made.dispose()


@contextlib.contextmanager
def serve(settings: Settings, seeded: WebWorkshop, *, mqtt: bool = False) -> Iterator[Served]:
    """The app as ``atelier server`` runs it, on a port of its own, in a thread."""
    app = create_app(settings, mqtt=mqtt, sweep=False)
    # Short live streams: a stopping server waits for its open streams at most this long.
    app.state.web.stream_s = 3.0
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-web", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("the app did not start under uvicorn")
            time.sleep(0.02)
        if mqtt and not app.state.mqtt.wait_until_ready(15):
            pytest.fail("the app's MQTT service did not connect to the broker")
        yield Served(f"http://127.0.0.1:{port}", app, seeded, settings.database_url)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def module_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database for one test module: SQLite, or PostgreSQL with ``ATELIER_WEB_DATABASE=postgresql``."""
    if os.environ.get("ATELIER_WEB_DATABASE", "sqlite") != "postgresql":
        return f"sqlite:///{tmp_path_factory.mktemp('web') / 'atelier.db'}"
    server: Postgres = request.getfixturevalue("postgres_server")
    name = f"web_{next(_databases)}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


_databases = itertools.count(1)


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app on a seeded database, without MQTT; one per test module."""
    url = module_database(request, tmp_path_factory)
    site = "web"
    seeded = seeded_database(url, site)
    with serve(Settings(database_url=url, site=site), seeded) as running:
        yield running


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless; a missing or broken one fails the tests that need it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-packages` as root (Debian package chromium)")
    try:
        launched = playwright_driver.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
    except Exception as error:
        pytest.fail(f"Chromium ({CHROMIUM}) did not start: {error}")
    yield launched
    launched.close()


@contextlib.contextmanager
def signed_in(
    browser: Browser,
    served: Served,
    account: Account,
    *,
    language: str = "fr",
    viewport: ViewportSize = DESKTOP,
) -> Iterator[Page]:
    """A page of a browser context of its own, signed in as ``account`` through the sign-in form."""
    context: BrowserContext = browser.new_context(
        base_url=served.url,
        locale="fr-FR" if language == "fr" else "en-GB",
        viewport=viewport,
        accept_downloads=True,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/login")
        page.get_by_label(re.compile("E-mail")).fill(account.login)
        page.get_by_label(re.compile("Mot de passe|Password")).fill(PASSWORD)
        page.get_by_role("button", name=re.compile("Se connecter|Sign in")).click()
        page.wait_for_url(re.compile(r"/(me|live)$"))
        yield page
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    """Save the page as docs/screenshots/<name>.png when ATELIER_SCREENSHOTS is set."""
    if os.environ.get("ATELIER_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# --- server-side page tests (no browser), on both databases ---------------------------------


@pytest.fixture
def web_workshop(database_url: str) -> WebWorkshop:
    return seeded_database(database_url, "web")


@pytest.fixture
def web_app(database_url: str, web_workshop: WebWorkshop) -> FastAPI:
    return create_app(Settings(database_url=database_url, site=web_workshop.site), mqtt=False, sweep=False)


@pytest.fixture
def client(web_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(web_app, follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, account: Account, language: str = "fr") -> None:
    client.cookies.set("atelier_lang", language)
    answer = client.post("/login", data={"login": account.login, "password": PASSWORD, "next": "/"})
    assert answer.status_code == 303, answer.text


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: TestClient, path: str) -> str:
    found = CSRF.search(client.get(path).text)
    assert found is not None, f"no CSRF token in the forms of {path}"
    return found.group(1)

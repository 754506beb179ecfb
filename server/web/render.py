"""Templates, the page frame every template extends, and the message shown after a form.

Pages are Jinja2 templates in ``server/web/templates/`` (autoescaped), rendered on the
server; the only scripts are the few lines of ``static/app.js`` (live updates, the close's
progress), and every page works without them. After a form, the page redirects (303) to
a page that shows what happened: the message travels in a short-lived cookie
(:func:`redirect`), as a catalogue key and its values, never as text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session

from server.auth.csrf import csrf_input
from server.auth.policy import Caller, Role
from server.clock import Clock
from server.web.i18n import LANGUAGES, Translator, language_of

FLASH_COOKIE = "atelier_flash"

environment = Environment(
    loader=PackageLoader("server.web", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str  # a catalogue key
    active: bool


_SECTIONS = (
    ("/live", "nav.live", None),
    ("/me", "nav.me", None),
    ("/training", "nav.training", (Role.TRAINER, Role.MANAGER)),
    ("/billing", "nav.billing", (Role.TREASURER, Role.MANAGER)),
    ("/manage", "nav.manage", (Role.MANAGER,)),
)


def navigation(path: str, roles: frozenset[Role]) -> list[NavItem]:
    return [
        NavItem(href, label, path == href or path.startswith(href + "/"))
        for href, label, needs in _SECTIONS
        if needs is None or roles & set(needs)
    ]


@dataclass(frozen=True)
class Flash:
    kind: str  # "ok" or "error"
    text: str


def _read_flash(request: Request, t: Translator) -> Flash | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        kind, key, values = data["k"], data["m"], data.get("p", {})
    except (ValueError, KeyError, TypeError):
        return None
    # Only catalogue keys of the flash and error families are shown: a cookie cannot put text on a page.
    if kind not in ("ok", "error") or not isinstance(key, str) or not isinstance(values, dict):
        return None
    if not key.startswith(("flash.", "error.")) or not t.has(key):
        return None
    try:
        return Flash(kind, t(key, **{str(k): str(v) for k, v in values.items()}))
    except (KeyError, IndexError, ValueError):
        return None


def redirect(
    url: str, *, ok: str | None = None, error: str | None = None, values: Mapping[str, object] | None = None
) -> RedirectResponse:
    """A 303 to ``url`` that shows message ``ok`` or ``error`` (a catalogue key) with ``values``."""
    response = RedirectResponse(url, status_code=303)
    key, kind = (ok, "ok") if ok else (error, "error")
    if key:
        payload = json.dumps({"k": kind, "m": key, "p": {k: str(v) for k, v in (values or {}).items()}})
        response.set_cookie(
            FLASH_COOKIE, base64.urlsafe_b64encode(payload.encode()).decode(), max_age=60, path="/",
            httponly=True, samesite="lax",
        )  # fmt: skip
    return response


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    caller: Caller | None = None,
    db: Session | None = None,
    clock: Clock | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """``template`` in the reader's language, in the page frame (navigation when signed in)."""
    t = Translator(language_of(request))
    roles: frozenset[Role] = frozenset()
    if caller is not None and db is not None and clock is not None:
        roles = frozenset(caller.roles(db, clock))
    flash = _read_flash(request, t)
    path = request.url.path
    here = f"{path}?{request.url.query}" if request.url.query else path
    html = environment.get_template(template).render(
        {
            "request": request,
            "_": t,
            "t": t,
            "lang": t.language,
            "languages": LANGUAGES,
            "caller": caller,
            "roles": roles,
            "Role": Role,
            "nav": navigation(path, roles) if caller is not None else [],
            "flash": flash,
            "here": here,
            "csrf": Markup(csrf_input(request)),  # noqa: S704 - built escaped by server.auth.csrf
            **(context or {}),
        }
    )
    response = HTMLResponse(html, status_code=status_code)
    if flash is not None or FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="lax")
    # Pages show personal data: never kept by a shared browser's cache or a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


def fragment(request: Request, template: str, context: dict[str, Any]) -> str:
    """A template without the page frame (the live view's updates), in the reader's language."""
    t = Translator(language_of(request))
    return environment.get_template(template).render({"_": t, "t": t, "lang": t.language, **context})

"""Signing in and out, the language switch, the home page and the static files."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from server.api.deps import ClockDep, SessionDep, SettingsDep
from server.auth.policy import PUBLIC, Role
from server.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from server.web.render import redirect, render
from server.web.session import LoginRefused, MemberUser, sign_in, sign_out

router = APIRouter(include_in_schema=False)

_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def safe_next(target: str | None, default: str = "/") -> str:
    """A path on this site to go back to; anything else (another site, ``//host``) is the default."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@router.get("/login", dependencies=[Depends(PUBLIC)], response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", {"next": safe_next(next), "error": None, "login": ""})


@router.post("/login", dependencies=[Depends(PUBLIC)], response_class=HTMLResponse)
def login(
    *,
    request: Request,
    login: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    db: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> Response:
    target = safe_next(next)
    response = RedirectResponse(target, status_code=303)
    try:
        sign_in(request, response, login, password, db=db, clock=clock, settings=settings)
    except LoginRefused as refusal:
        key = {"throttled": "login.throttled", "blank": "login.blank"}.get(refusal.kind, "login.wrong")
        return render(
            request,
            "login.html",
            {"next": target, "error": (key, refusal.minutes), "login": login},
            status_code=429 if refusal.kind == "throttled" else 401,
        )
    return response


@router.post("/logout")
def logout(caller: MemberUser, db: SessionDep, clock: ClockDep) -> Response:
    response = redirect("/login", ok="flash.signed_out")
    sign_out(caller, response, db=db, clock=clock)
    return response


@router.get("/lang/{language}", dependencies=[Depends(PUBLIC)])
def switch_language(language: str, next: str = "/") -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86_400, path="/", samesite="lax")
    return response


@router.get("/")
def home(caller: MemberUser, db: SessionDep, clock: ClockDep) -> Response:
    staff = any(caller.has(role, db, clock) for role in (Role.TRAINER, Role.TREASURER, Role.MANAGER))
    return RedirectResponse("/live" if staff else "/me", status_code=303)


@router.get("/static/{name}", dependencies=[Depends(PUBLIC)])
def static_file(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    media = _STATIC_TYPES.get(suffix)
    resource = resources.files("server.web").joinpath("static", name)
    if media is None or "/" in name or not resource.is_file():
        return Response(status_code=404)
    return Response(
        resource.read_bytes(), media_type=media, headers={"Cache-Control": "public, max-age=3600"}
    )

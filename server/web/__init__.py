"""The web interface: server-rendered pages for members, trainers, the treasurer and the manager.

:func:`install` adds it to an app made by :func:`server.app.create_app`. The pages call the
same domain functions as the REST API (never the API over HTTP), are authenticated by the
same session cookie with the same CSRF token (:mod:`server.web.session`), speak French or
English (:mod:`server.web.i18n`), and update live through server-sent events where the
workshop moves (the live view, the badge enrolment, the month close).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from server.auth.policy import check_policies
from server.web.render import render
from server.web.routes import router
from server.web.session import NotAllowed, SignInRequired, sign_in_url
from server.web.state import WebState

__all__ = ["install"]


async def _sign_in_first(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)
    return RedirectResponse(sign_in_url(error.next_path), status_code=303)


async def _not_allowed(request: Request, error: Exception) -> Response:
    assert isinstance(error, NotAllowed)
    return render(
        request,
        "forbidden.html",
        {"roles": sorted(role.value for role in error.roles), "csrf_failed": error.csrf},
        status_code=403,
    )


def install(app: FastAPI, state: WebState | None = None) -> None:
    """Serve the web interface from ``app``: its pages, their static files, and its state."""
    app.state.web = state or WebState()
    app.include_router(router)
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(NotAllowed, _not_allowed)
    check_policies(app)  # every page declares who may see it, as every API route does

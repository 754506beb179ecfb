"""CSRF protection for browser sessions: a synchronizer token per session.

A browser sends the session cookie with every request to the server, including one that
another site's page makes it send. So every *unsafe* request (POST, PUT, PATCH, DELETE)
that is authenticated by the cookie must also carry the session's CSRF token, which a page
of another site cannot read: in the ``X-CSRF-Token`` header (scripts, curl) or in a
``csrf_token`` form field (the web interface's HTML forms). The token is given by the
sign-in answer and by ``GET /api/v1/auth/me``; a template puts it in its forms with
:func:`csrf_input`. Requests with an API token carry no cookie a browser would add on its
own, and need none.
"""

from html import escape

from fastapi import Request

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type in _FORMS


async def submitted_csrf(request: Request) -> str | None:
    """The CSRF token an unsafe request carries, from its header or else its form; None if none.

    A dependency of :func:`server.auth.policy.authenticate`. Async, because reading a form
    is; Starlette keeps the parsed form, so a route reading it again gets the same one.
    """
    if request.method in SAFE_METHODS:
        return None
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if is_form(request):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def csrf_token(request: Request) -> str | None:
    """The CSRF token of the session the request was authenticated by, if any."""
    caller = getattr(request.state, "caller", None)
    session = getattr(caller, "session", None)
    token = getattr(session, "csrf_token", None)
    return token if isinstance(token, str) else None


def csrf_input(request: Request) -> str:
    """The hidden form field a template puts in every form that posts: ``{{ csrf_input(request) }}``.

    Empty outside a signed-in session (a form posted without one is refused anyway)."""
    token = csrf_token(request)
    if token is None:
        return ""
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token, quote=True)}">'

"""The live workshop view, and the server-sent events that keep it (and the badge page) current."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from server.api.deps import ClockDep, SessionDep
from server.auth.policy import Caller, Role
from server.clock import Clock
from server.db import SessionFactory
from server.web.live_view import Snapshot, Status, snapshot
from server.web.render import fragment, render
from server.web.session import MemberUser
from server.web.state import live_of, web_state

router = APIRouter(include_in_schema=False)

STAFF = (Role.TRAINER, Role.TREASURER, Role.MANAGER)


def _context(view: Snapshot, caller: Caller, staff: bool) -> dict[str, object]:
    return {"view": view, "me": caller.id, "staff": staff, "Status": Status}


@router.get("/live", response_class=HTMLResponse)
def live_page(request: Request, caller: MemberUser, db: SessionDep, clock: ClockDep) -> HTMLResponse:
    """Every machine and what it is doing; who uses it is shown to trainers, the treasurer and managers."""
    staff = any(caller.has(role, db, clock) for role in STAFF)
    view = snapshot(db, live_of(request), clock())
    return render(request, "live.html", _context(view, caller, staff), caller=caller, db=db, clock=clock)


def event_stream(
    request: Request,
    render_now: Callable[[], str],
    watch: Callable[[], int],
    *,
    refresh_s: float | None = None,
) -> StreamingResponse:
    """Server-sent events: ``update`` with ``render_now()``'s HTML each time it changes.

    ``render_now`` runs in the thread pool when ``watch()`` moved on, and at least every
    ``refresh_s`` (the web state's by default); the stream ends after ``stream_s`` and the
    browser reconnects.
    """
    state = web_state(request)
    every = refresh_s if refresh_s is not None else state.refresh_s

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        last: str | None = None
        seen: int | None = None
        stop = time.monotonic() + state.stream_s
        refresh_at = 0.0
        while time.monotonic() < stop:
            version = watch()
            if version != seen or time.monotonic() >= refresh_at:
                seen, refresh_at = version, time.monotonic() + every
                html = await run_in_threadpool(render_now)
                if html != last:
                    last = html
                    data = "".join(f"data: {line}\n" for line in html.splitlines())
                    yield f"event: update\n{data}\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(state.poll_s)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/live/events")
def live_events(request: Request, caller: MemberUser, db: SessionDep, clock: ClockDep) -> StreamingResponse:
    staff = any(caller.has(role, db, clock) for role in STAFF)
    db.close()  # the stream reads with sessions of its own: this one's connection goes back to the pool
    live = live_of(request)
    factory: SessionFactory = request.app.state.session_factory
    now: Clock = clock

    def render_now() -> str:
        with factory() as session:
            view = snapshot(session, live, now())
        return fragment(request, "live/_machines.html", _context(view, caller, staff))

    return event_stream(request, render_now, lambda: live.version)

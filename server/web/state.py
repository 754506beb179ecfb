"""What the web interface keeps for the life of the app: in ``app.state.web``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from server.live import LiveWorkshop
from server.web.jobs import CloseJobs


@dataclass
class WebState:
    live: LiveWorkshop = field(default_factory=LiveWorkshop)
    """Used when the app runs without MQTT: no machine state ever arrives in it."""
    closes: CloseJobs = field(default_factory=CloseJobs)
    stream_s: float = 10.0
    """A live stream ends after this long and the browser opens a new one (EventSource does so
    by itself): a server stopping never waits longer than this for its streams."""
    poll_s: float = 0.5
    """How often a stream looks whether something changed."""
    refresh_s: float = 5.0
    """How often a stream reads the database again when no gateway said anything."""


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def live_of(request: Request) -> LiveWorkshop:
    """The machines' states the MQTT service hears, or the web's own empty one without MQTT."""
    service = request.app.state.mqtt
    if service is not None:
        live: LiveWorkshop = service.live
        return live
    return web_state(request).live

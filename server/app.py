"""The application factory: ``create_app()`` builds a server from its settings, no module globals."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from server.api.errors import install_error_handlers
from server.api.routes import api_router
from server.api.routes.health import router as health_router
from server.db import make_engine, make_session_factory, upgrade_database
from server.mqtt import MqttService
from server.settings import Settings


def create_app(settings: Settings | None = None, *, mqtt: bool = True) -> FastAPI:
    """A server for ``settings`` (read from ``ATELIER_*`` when not given).

    Starting it (the lifespan) upgrades the database schema and, unless
    ``mqtt=False``, starts answering gateways; stopping it stops both.
    """
    settings = settings or Settings()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(upgrade_database, settings.database_url)
        service = MqttService(settings, app.state.session_factory) if mqtt else None
        app.state.mqtt = service
        if service is not None:
            # Connects in the background, and keeps retrying: the API works without the broker.
            service.start()
        try:
            yield
        finally:
            if service is not None:
                await run_in_threadpool(service.stop)
            engine.dispose()

    app = FastAPI(
        title="Atelier Access",
        summary="Badge access and metered usage for shared workshops.",
        version="0.1.0",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.mqtt = None
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(health_router)
    return app

"""The application factory: ``create_app()`` builds a server from its settings, no module globals."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from server.api.errors import install_error_handlers
from server.api.limits import BodyLimit
from server.api.routes import api_router
from server.api.routes.health import router as health_router
from server.api.routes.metrics import router as metrics_router
from server.auth.policy import check_policies
from server.auth.ratelimit import LoginLimiter
from server.db import make_engine, make_session_factory, normalise_url, upgrade_database
from server.mqtt import MqttService
from server.observability import ServerMetrics
from server.settings import Settings
from server.telemetry import TelemetryWriter
from server.training.sweeper import ExpirySweeper
from server.web import install as install_web


def create_app(settings: Settings | None = None, *, mqtt: bool = True, sweep: bool = True) -> FastAPI:
    """A server for ``settings`` (read from ``ATELIER_*`` when not given).

    Starting it (the lifespan) upgrades the database schema and, unless
    ``mqtt=False``, starts answering gateways; stopping it stops both. With
    ``telemetry_url`` set, the telemetry writer runs for as long as the app.
    Unless ``sweep=False``, expired certifications are recorded at start and
    then every ``expiry_sweep_interval_s`` (:class:`~server.training.sweeper.ExpirySweeper`).
    """
    settings = settings or Settings()
    engine = _engine(settings)
    telemetry = _telemetry_writer(settings)
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(upgrade_database, settings.database_url)
        service = (
            MqttService(settings, app.state.session_factory, metrics=metrics, telemetry=telemetry)
            if mqtt
            else None
        )
        app.state.mqtt = service
        sweeper = (
            ExpirySweeper(app.state.session_factory, settings.expiry_sweep_interval_s) if sweep else None
        )
        app.state.sweeper = sweeper
        if sweeper is not None:
            sweeper.start()
        if telemetry is not None:
            telemetry.start()
        if service is not None:
            # Connects in the background, and keeps retrying: the API works without the broker.
            service.start()
        try:
            yield
        finally:
            if service is not None:
                await run_in_threadpool(service.stop)
            if sweeper is not None:
                await run_in_threadpool(sweeper.stop)
            if telemetry is not None:
                # After the MQTT service: nothing offers samples any more.
                await run_in_threadpool(telemetry.stop)
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
    app.state.sweeper = None
    app.state.telemetry = telemetry
    app.state.metrics = metrics
    metrics.watch_gateways(app.state.session_factory, settings.site)
    metrics.watch_telemetry(lambda: telemetry.stats if telemetry is not None else None)
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.state.login_limiter = LoginLimiter(
        per_account=settings.login_failures_per_account,
        per_client=settings.login_failures_per_client,
        window_s=settings.login_failure_window_s,
    )
    app.add_middleware(BodyLimit)
    check_policies(app)
    install_web(app)
    return app


def _engine(settings: Settings) -> Engine:
    if normalise_url(settings.database_url).get_backend_name() == "sqlite":
        return make_engine(settings.database_url)  # one file, one writer: no pool to size
    return make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )


def _telemetry_writer(settings: Settings) -> TelemetryWriter | None:
    if settings.telemetry_url is None:
        return None
    token = settings.telemetry_token
    return TelemetryWriter(
        settings.telemetry_url,
        org=settings.telemetry_org,
        bucket=settings.telemetry_bucket,
        token=token.get_secret_value() if token is not None else None,
        capacity=settings.telemetry_buffer_points,
        flush_interval_s=settings.telemetry_flush_interval_s,
        timeout_s=settings.telemetry_timeout_s,
    )

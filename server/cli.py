"""The ``atelier server`` and ``atelier db upgrade`` commands (wired into cli/main.py)."""

import argparse
import logging

from server.settings import Settings


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_server(host: str | None = None, port: int | None = None) -> int:
    """Upgrade the database, then serve the API and answer gateways until interrupted."""
    import uvicorn  # noqa: PLC0415 - only this command needs it

    from server.app import create_app  # noqa: PLC0415 - keeps `atelier --help` light
    from server.db import upgrade_database  # noqa: PLC0415

    settings = Settings()
    _configure_logging(settings)
    # Migrate before binding the port, so that a failed migration is reported as such.
    upgrade_database(settings.database_url)
    uvicorn.run(
        create_app(settings),
        host=host or settings.http_host,
        port=port or settings.http_port,
        log_level=settings.log_level.lower(),
    )
    return 0


def _server(args: argparse.Namespace) -> int:
    return run_server(args.host, args.port)


def _db_upgrade(args: argparse.Namespace) -> int:
    from server.db import upgrade_database  # noqa: PLC0415

    settings = Settings()
    _configure_logging(settings)
    upgrade_database(settings.database_url, args.revision)
    logging.getLogger(__name__).info("database %s is at revision %s", settings.database_url, args.revision)
    return 0


def add_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``server`` and ``db`` on the ``atelier`` command line."""
    server = subparsers.add_parser(
        "server",
        help="run the server: REST API and MQTT (settings from ATELIER_* variables)",
        description="Upgrade the database, then serve the API and answer the gateways.",
    )
    server.add_argument("--host", help="address to listen on (default: ATELIER_HTTP_HOST or 127.0.0.1)")
    server.add_argument("--port", type=int, help="port to listen on (default: ATELIER_HTTP_PORT or 8000)")
    server.set_defaults(func=_server)

    db = subparsers.add_parser("db", help="manage the server database")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser(
        "upgrade", help="migrate the database (ATELIER_DATABASE_URL) to the latest schema"
    )
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    upgrade.set_defaults(func=_db_upgrade)

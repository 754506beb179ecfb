"""The ``atelier server``, ``db``, ``training``, ``token``, ``member`` and ``keys`` commands (wired into cli/main.py)."""

import argparse
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from server.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


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
        # An open live page is a stream that never ends by itself: do not wait for it to stop.
        timeout_graceful_shutdown=2,
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


@contextmanager
def _database() -> Iterator["Session"]:
    """A session on the migrated database of ``ATELIER_DATABASE_URL``."""
    from server.db import make_engine, make_session_factory, upgrade_database  # noqa: PLC0415

    settings = Settings()
    _configure_logging(settings)
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as db:
            yield db
    finally:
        engine.dispose()


def _failing(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report a workshop error (unknown member, already revoked...) as one line and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        from server.workshop import WorkshopError  # noqa: PLC0415

        try:
            return action(args)
        except WorkshopError as error:
            print(f"atelier: {error}", file=sys.stderr)
            return 1

    return run


def _training_sweep(args: argparse.Namespace) -> int:
    from server.clock import utc_now  # noqa: PLC0415
    from server.training.expiry import sweep_expiries  # noqa: PLC0415

    with _database() as db:
        lapses = sweep_expiries(db, utc_now())
    for lapse in lapses:
        print(
            f"certification {lapse.certification_id}: member {lapse.member_id}, {lapse.skill}, "
            f"expired on {lapse.at:%Y-%m-%d} ({lapse.reason})"
        )
    print(f"{len(lapses)} certification(s) newly expired", file=sys.stderr)
    return 0


def _keys_failing(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report a key that cannot be made or read as one line and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        from server.signing import SigningKeyError  # noqa: PLC0415

        try:
            return action(args)
        except SigningKeyError as error:
            print(f"atelier: {error}", file=sys.stderr)
            return 1

    return run


def _gateway_config_hint(key_id: str, public: str) -> str:
    return f'in each gateway\'s configuration: [gateway] allowlist_keys = {{ "{key_id}" = "{public}" }}'


def _keys_create(args: argparse.Namespace) -> int:
    from protocol.allowlist import public_key_text  # noqa: PLC0415
    from server.signing import create_key_file  # noqa: PLC0415

    key = create_key_file(args.out)
    public = public_key_text(key.public_key())
    key_id = Settings().signing_key_id
    print(
        f"signing key written to {args.out} (mode 600). Give it to the server with "
        f"ATELIER_SIGNING_KEY_FILE={args.out.resolve()} (key id ATELIER_SIGNING_KEY_ID, now {key_id!r}); "
        f"its public key, below, goes {_gateway_config_hint(key_id, public)}",
        file=sys.stderr,
    )
    print(public)
    return 0


def _keys_public(args: argparse.Namespace) -> int:
    from protocol.allowlist import public_key_text  # noqa: PLC0415
    from server.signing import load_private_key  # noqa: PLC0415

    settings = Settings()
    path: Path | None = args.key or settings.signing_key_file
    if path is None:
        print("atelier: no key: give --key FILE or set ATELIER_SIGNING_KEY_FILE", file=sys.stderr)
        return 2
    public = public_key_text(load_private_key(path).public_key())
    print(_gateway_config_hint(settings.signing_key_id, public), file=sys.stderr)
    print(public)
    return 0


def _add_keys_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    keys = subparsers.add_parser(
        "keys",
        help="the site's signing key: the server signs each gateway's offline allowlist with it",
    )
    commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create",
        help="make a new Ed25519 signing key (PEM, PKCS8), readable by its owner only",
        description="Writes a new private key to FILE, which must not exist yet, with mode 600, "
        "and prints its public key for the gateways' configuration. Point the server at it "
        "with ATELIER_SIGNING_KEY_FILE.",
    )
    create.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write the key")
    create.set_defaults(func=_keys_failing(_keys_create))
    public = commands.add_parser(
        "public",
        help="print the public key that goes into each gateway's allowlist_keys",
        description="Prints the public half of the signing key, as gateways expect it in "
        "[gateway] allowlist_keys, under the key id ATELIER_SIGNING_KEY_ID.",
    )
    public.add_argument(
        "--key", type=Path, metavar="FILE", help="the private key (default: ATELIER_SIGNING_KEY_FILE)"
    )
    public.set_defaults(func=_keys_failing(_keys_public))


def _add_training_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    training = subparsers.add_parser("training", help="certifications: record the ones that expired")
    commands = training.add_subparsers(dest="training_command", required=True, metavar="COMMAND")
    sweep = commands.add_parser(
        "sweep",
        help="record every certification that expired, by date or by disuse, since the last sweep",
        description="The server does this at start and every ATELIER_EXPIRY_SWEEP_INTERVAL_S; "
        "this runs it once now and lists what it recorded.",
    )
    sweep.set_defaults(func=_failing(_training_sweep))

    from server.auth.cli import add_account_commands  # noqa: PLC0415 - it imports this module

    add_account_commands(subparsers)


def add_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``server``, ``db``, ``training``, ``token``, ``member`` and ``keys`` on the ``atelier`` command line."""
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

    _add_training_commands(subparsers)
    _add_keys_commands(subparsers)

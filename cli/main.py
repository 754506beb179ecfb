"""``atelier``: dispatch to the subcommands each package registers."""

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence


def _log_level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        raise argparse.ArgumentTypeError(f"unknown log level {name!r}")
    return level


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``atelier`` command line; with ``only``, the commands of that one module of :data:`_PACKAGES`."""
    parser = argparse.ArgumentParser(
        prog="atelier",
        description="Atelier Access: badge access and metered billing for shared workshops.",
    )
    parser.add_argument(
        "--log-level", type=_log_level, default=logging.INFO, help="DEBUG, INFO, WARNING (default INFO)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrations(only):
        register(subparsers)
    return parser


Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# Each package's commands, with the third-party modules its extra installs: a
# gateway installed without the `server` extra still runs `atelier gateway`.
_PACKAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("server.cli", ("fastapi", "sqlalchemy", "alembic")),
    ("server.broker_config", ()),  # runs on a broker host without the server extra
    ("server.billing.cli", ("sqlalchemy", "alembic", "sepaxml", "fpdf")),
    ("server.reports.cli", ("sqlalchemy", "alembic")),
    ("controller.cli", ("gpiozero",)),
    ("demo.cli", ("fastapi", "gpiozero", "amqtt")),
)


# `atelier gateway` is a daemon on a Pi Zero, kept under 40 MB resident (docs/benchmarks.md):
# it registers only its own package's commands, since the server's would import pydantic,
# SQLAlchemy and cryptography (tests/controller/test_footprint.py).
_LIGHT_COMMANDS = {"gateway": "controller.cli"}


def _command_of(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``, if it comes after nothing but ``--log-level``."""
    args = iter(argv)
    for arg in args:
        if arg == "--log-level":
            next(args, None)
        elif not arg.startswith("--log-level="):
            return None if arg.startswith("-") else arg
    return None


def _registrations(only: str | None = None) -> list[Register]:
    found: list[Register] = []
    for module_name, needs in _PACKAGES:
        if only is not None and module_name != only:
            continue
        if all(importlib.util.find_spec(name) is not None for name in needs):
            module = importlib.import_module(module_name)
            found.append(module.add_commands)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_LIGHT_COMMANDS.get(_command_of(argv) or ""))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atelier",
        description="Atelier Access: badge access and metered billing for shared workshops.",
    )
    parser.add_argument(
        "--log-level", type=_log_level, default=logging.INFO, help="DEBUG, INFO, WARNING (default INFO)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrations():
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


def _registrations() -> list[Register]:
    found: list[Register] = []
    for module_name, needs in _PACKAGES:
        if all(importlib.util.find_spec(name) is not None for name in needs):
            module = importlib.import_module(module_name)
            found.append(module.add_commands)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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

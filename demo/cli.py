"""``atelier demo``: see the whole system work in a minute."""

import argparse
import logging
from pathlib import Path

from demo.run import DemoOptions, run_demo


def _demo(args: argparse.Namespace) -> int:
    if not args.verbose:
        # The narrator tells the story; the components' own logs are for --verbose.
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    return run_demo(
        DemoOptions(
            port=args.port,
            once=args.once,
            prefer_mosquitto=not args.amqtt,
            data_dir=Path(args.data_dir),
            history=args.history,
        )
    )


def add_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a simulated workshop: broker, server and gateways in one process",
        description=(
            "Starts an MQTT broker (Mosquitto if installed, else amqtt in-process), the server on "
            "SQLite (or ATELIER_DATABASE_URL) and two simulated gateways, then plays members "
            "badging in until Ctrl-C."
        ),
    )
    parser.add_argument("--port", type=int, default=8000, help="HTTP port of the server (default 8000)")
    parser.add_argument("--once", action="store_true", help="play one round, check it was recorded, and exit")
    parser.add_argument(
        "--amqtt", action="store_true", help="use the in-process amqtt broker even if Mosquitto is installed"
    )
    parser.add_argument(
        "--data-dir", default="var/demo", help="where the demo's SQLite file lives (default var/demo)"
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="N",
        help="also add billing settings, prices and N past months of usage, ready to close and export",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="also show the server's and gateways' own logs"
    )
    parser.set_defaults(func=_demo)

"""``atelier gateway --config FILE``: run a gateway until SIGINT or SIGTERM."""

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from controller.config import BadConfig, load_config
from controller.gateway import Gateway
from controller.hardware.interfaces import HardwareError
from controller.sdnotify import Notifier

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_BAD_CONFIG = 2
EXIT_HARDWARE = 3
WORKER_STALLED_S = 20.0
"""A worker that has not passed through its loop for this long is hung: the systemd watchdog
is no longer fed (WatchdogSec=30s in hardware/systemd/atelier-gateway.service)."""


def add_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the controller's commands on the ``atelier`` command line."""
    parser = subparsers.add_parser(
        "gateway",
        help="run a gateway: read badges and current, switch machines, report usage",
        description="Run an Atelier Access gateway until SIGINT or SIGTERM, then stop cleanly.",
    )
    parser.add_argument("--config", required=True, type=Path, metavar="FILE", help="the gateway's TOML file")
    parser.set_defaults(func=run_gateway)


def run_gateway(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except BadConfig as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        gateway = Gateway(config)
    except HardwareError as error:
        print(f"{args.config}: cannot drive the hardware: {error}", file=sys.stderr)
        return EXIT_HARDWARE
    stopping = threading.Event()

    def ask_to_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    systemd = Notifier()
    try:
        gateway.start()
        systemd.notify("READY=1")
        while not stopping.wait(timeout=min(1.0, systemd.ping_every_s)):
            # A timed wait lets the signal handler run promptly; the watchdog is fed only
            # while the worker turns, so a hung worker gets the gateway restarted.
            if time.monotonic() - gateway.alive_at < WORKER_STALLED_S:
                systemd.notify("WATCHDOG=1")
    finally:
        systemd.notify("STOPPING=1")
        gateway.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK

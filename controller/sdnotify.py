"""systemd's notification protocol, without a dependency: one datagram per state change.

With ``Type=notify`` and ``WatchdogSec=`` in the unit (hardware/systemd/), systemd
passes ``NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace) and
``WATCHDOG_USEC``. The gateway says ``READY=1`` once it runs, ``WATCHDOG=1``
while its worker is alive, and ``STOPPING=1`` when it stops; if the pings stop,
systemd kills and restarts it. Outside systemd every call does nothing.
"""

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        """The watchdog's timeout, when systemd set one for this process."""

    @property
    def ping_every_s(self) -> float:
        """How often to ping: half the watchdog's timeout, as sd_watchdog_enabled(3) advises."""
        return self.watchdog_s / 2 if self.watchdog_s else 1.0

    def notify(self, state: str) -> bool:
        """Send ``state`` ("READY=1", "WATCHDOG=1", "STOPPING=1"...); whether it was sent."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(state.encode())
        except OSError as error:
            log.warning("could not tell systemd %r: %s", state, error)
            return False
        return True

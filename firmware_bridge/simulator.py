"""The microcontroller's side of the bridge, in Python: what hardware/firmware/ does on an
ESP32, for tests, the bench and a workshop without the board yet.

It speaks the protocol byte for byte as the firmware does (docs/firmware-protocol.md):
ANNOUNCE at start and while unlinked, HELLO_REPLY to a hello, ACK once a command is
carried out, BADGE/BUTTON when tapped or pressed, CURRENT every ``current_every_s``,
and it counts the link as lost after ``link_lost_s`` without a valid frame. Its
relays start off, and stay as they are when the link is lost (as a Pi's GPIO pin does
when the gateway process dies); a restart of the gateway switches them off.

Run it on a pty or a TCP port for a gateway to use::

    python -m firmware_bridge.simulator --port socket://127.0.0.1:7000 --listen

then type ``tap 04A1B2C3``, ``press``, ``amps 2.5`` or ``reboot`` on its standard input.
"""

import argparse
import logging
import random
import socket
import sys
import threading
import time
from collections.abc import Sequence

from firmware_bridge.endpoint import Endpoint, Ticket
from firmware_bridge.messages import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Announce,
    Badge,
    Button,
    Current,
    Hello,
    HelloReply,
    Indicate,
    Message,
    Ping,
    SignalCode,
    SwitchSet,
)
from firmware_bridge.port import Port, open_port

log = logging.getLogger(__name__)


class FirmwareSimulator:
    def __init__(
        self,
        port: Port,
        *,
        channels: int = 1,
        firmware: str = "atelier-bridge-sim 1.0",
        major: int = PROTOCOL_MAJOR,
        current_every_s: float = 0.2,
        link_lost_s: float = 3.0,
        announce_every_s: float = 1.0,
        ack_timeout_s: float = 0.1,
        retries: int = 5,
    ) -> None:
        self.port = port
        self.channels = channels
        self.firmware = firmware
        self.major = major
        self.current_every_s = current_every_s
        self.link_lost_s = link_lost_s
        self.announce_every_s = announce_every_s
        self.boot_id = random.getrandbits(32)
        self.relays = [False] * channels
        self.signals: list[tuple[SignalCode, int]] = [(SignalCode.LOCKED, 0)] * channels
        self.amps = [0.0] * channels
        self.linked = False
        self.hellos = 0
        self.received: list[Message] = []
        self._lock = threading.Lock()
        self.endpoint = Endpoint(
            "simulated firmware",
            self._write,
            on_message=self._command,
            on_handshake=self._handshake,
            on_give_up=self._gave_up,
            ack_timeout_s=ack_timeout_s,
            retries=retries,
        )
        self.endpoint.hold()
        self._next_current = 0.0
        self._next_announce = 0.0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated firmware", daemon=True)
        self._thread.start()

    @classmethod
    def on(cls, url: str, **options: object) -> "FirmwareSimulator":
        """A simulator on the port at ``url`` (the far end of a pty, a socket://...)."""
        return cls(open_port(url), **options)  # type: ignore[arg-type]

    def _write(self, frame: bytes) -> None:
        self.port.write(frame)

    # The firmware's loop.

    def _run(self) -> None:
        # A microcontroller announces itself as it starts, before it reads anything: a
        # gateway's HELLO already waiting on the line is answered after that.
        self._next_announce = time.monotonic() + self.announce_every_s
        try:
            self.endpoint.send_handshake(Announce(self.boot_id))
        except OSError:
            if not self._closing.is_set():
                log.exception("simulated firmware: writing failed")
            return
        while not self._closing.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except OSError:
                if self._closing.is_set():
                    return
                log.exception("simulated firmware: the port failed")
                return
            if data:
                self.endpoint.feed(data)
            now = time.monotonic()
            heard = self.endpoint.heard_at
            if self.linked and (heard is None or now - heard > self.link_lost_s):
                log.warning(
                    "simulated firmware: nothing from the gateway for %.1f s: link lost", self.link_lost_s
                )
                self._unlink()
            if not self.linked and now >= self._next_announce:
                self._next_announce = now + self.announce_every_s
                self.endpoint.send_handshake(Announce(self.boot_id))
            if self.linked and now >= self._next_current:
                self._next_current = now + self.current_every_s
                for channel in range(self.channels):
                    milliamps = round(self.amps[channel] * 1000)
                    self.endpoint.send(Current(channel, milliamps), coalesce=("current", channel))
            try:
                self.endpoint.tick()
            except OSError:
                if not self._closing.is_set():
                    log.exception("simulated firmware: writing failed")
                return

    def _handshake(self, message: Message) -> None:
        if not isinstance(message, Hello):
            return
        self.hellos += 1
        # Whatever the gateway's version, answer with ours: the gateway decides.
        self.endpoint.send_handshake(
            HelloReply(self.major, PROTOCOL_MINOR, self.boot_id, self.channels, self.firmware)
        )
        self.endpoint.reset()
        self.linked = True

    def _command(self, message: Message) -> None:
        with self._lock:
            self.received.append(message)
        if isinstance(message, SwitchSet) and message.channel < self.channels:
            self.relays[message.channel] = message.on
        elif isinstance(message, Indicate) and message.channel < self.channels:
            self.signals[message.channel] = (message.signal, message.family)
        elif not isinstance(message, Ping):
            log.warning("simulated firmware: ignored %r", message)

    def _gave_up(self, ticket: Ticket) -> None:
        log.warning("simulated firmware: %r went unacknowledged: link lost", ticket.message)
        self._unlink()

    def _unlink(self) -> None:
        self.linked = False
        self.endpoint.hold()
        self._next_announce = 0.0

    # What happens at the machine.

    def tap(self, uid: str, channel: int = 0) -> Ticket:
        """A badge is tapped on the reader of ``channel`` (debounced, as the firmware does)."""
        return self.endpoint.send(Badge(channel, bytes.fromhex(uid)))

    def press(self, channel: int = 0) -> Ticket:
        return self.endpoint.send(Button(channel))

    def set_amps(self, amps: float, channel: int = 0) -> None:
        self.amps[channel] = amps

    def reboot(self) -> None:
        """A reset (a brown-out, the watchdog): relays off, a new boot id, everything forgotten."""
        self.endpoint.fail_all("rebooted")
        self.boot_id = random.getrandbits(32)
        self.relays = [False] * self.channels
        self.signals = [(SignalCode.LOCKED, 0)] * self.channels
        self.endpoint.deframer.reset()
        self._unlink()

    def write_raw(self, data: bytes) -> None:
        """Put bytes on the line as they are (for tests: garbage, replays, cut frames)."""
        self.port.write(data)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2.0)
        self.port.close()


def _serve_socket(address: str) -> Port:
    host, _, port = address.removeprefix("socket://").rpartition(":")
    server = socket.create_server((host or "127.0.0.1", int(port)))
    print(f"waiting for a gateway on {host}:{port}", file=sys.stderr)
    connection, _ = server.accept()
    server.close()
    return _SocketPort(connection)


class _SocketPort:
    """The accepting end of a TCP connection, as a port (pyserial's socket:// only connects)."""

    def __init__(self, connection: socket.socket) -> None:
        self._socket = connection
        self._socket.settimeout(0.01)

    @property
    def in_waiting(self) -> int:
        return 0

    def read(self, size: int = 1) -> bytes:
        try:
            data = self._socket.recv(max(size, 4096))
        except TimeoutError:
            return b""
        if not data:
            raise OSError("the gateway closed the connection")
        return data

    def write(self, data: bytes, /) -> int | None:
        self._socket.sendall(data)
        return len(data)

    def close(self) -> None:
        self._socket.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A simulated Atelier Access bridge microcontroller.")
    parser.add_argument("--port", required=True, help="a pyserial URL, or socket://HOST:PORT with --listen")
    parser.add_argument(
        "--listen", action="store_true", help="accept the gateway's connection on the socket:// address"
    )
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    port = _serve_socket(args.port) if args.listen else open_port(args.port)
    simulator = FirmwareSimulator(port, channels=args.channels)
    try:
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["tap"] and len(words) >= 2:
                simulator.tap(words[1], int(words[2]) if len(words) > 2 else 0)
            elif words[:1] == ["press"]:
                simulator.press(int(words[1]) if len(words) > 1 else 0)
            elif words[:1] == ["amps"] and len(words) >= 2:
                simulator.set_amps(float(words[1]), int(words[2]) if len(words) > 2 else 0)
            elif words[:1] == ["reboot"]:
                simulator.reboot()
            print(f"relays {simulator.relays} signals {simulator.signals} linked {simulator.linked}")
    except KeyboardInterrupt:
        pass
    finally:
        simulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

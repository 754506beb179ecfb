"""The gateway's side of the bridge: one serial port, one microcontroller, one thread.

The thread opens the port (and opens it again if it vanishes), says hello until the
microcontroller answers in a protocol version this gateway speaks, then keeps the link
alive with a ping each ``ping_every_s`` of silence. What the microcontroller reports
(badges, button presses, currents) is kept per channel for the parts
(:mod:`firmware_bridge.parts`) to read; what the parts ask (switch, indicate) is sent
in order, a switch command waiting for its acknowledgement.

A microcontroller that restarts comes back with its relays off (the firmware starts
them off) and a new boot id: the link notices, logs it, and does not switch them on
again by itself. The parts of a link that is down raise :class:`LinkDown`, so the
gateway shows an error at the machine and never powers it on.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from firmware_bridge.endpoint import Endpoint, Ticket
from firmware_bridge.errors import BridgeClosed, LinkDown
from firmware_bridge.messages import (
    PROTOCOL_MAJOR,
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
from firmware_bridge.port import Port

log = logging.getLogger(__name__)

REOPEN_EVERY_S = 2.0
INCOMPATIBLE_HELLO_EVERY_S = 5.0
QUEUED_TAPS = 16
SAME_BADGE_AFTER_HANDSHAKE_S = 2.0
"""A badge frame resent across a handshake (its ACK was lost, then the link reset) is the
same tap: one identical to the last, this soon, is dropped."""


@dataclass
class Channel:
    """What the gateway knows of one machine the microcontroller serves."""

    taps: deque[str] = field(default_factory=lambda: deque(maxlen=QUEUED_TAPS))
    presses: int = 0
    milliamps: int = 0
    current_at: float | None = None
    badge_listener: Callable[[], None] | None = None
    button_listener: Callable[[], None] | None = None
    switch_on: bool = False
    """What the relay is, as last acknowledged (False until a switch-on is acknowledged)."""
    has_switch: bool = False
    shown: Indicate | None = None


class BridgeLink:
    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        ack_timeout_s: float = 0.1,
        retries: int = 5,
        ping_every_s: float = 1.0,
        hello_every_s: float = 0.25,
        current_stale_s: float = 3.0,
        start_grace_s: float = 3.0,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.ping_every_s = ping_every_s
        self.hello_every_s = hello_every_s
        self.current_stale_s = current_stale_s
        self.start_grace_s = start_grace_s
        self._lock = threading.Lock()
        self._channels: dict[int, Channel] = {}
        self._port: Port | None = None
        self.peer: HelloReply | None = None
        """The microcontroller's last hello reply: version, boot id, channels, firmware."""
        self.up = False
        self.problem = "no answer from the microcontroller yet"
        self._started_at = time.monotonic()
        self._next_hello = 0.0
        self._last_badge: tuple[str, float] | None = None
        self._handshakes = 0
        self._badges_since_handshake = 0
        self._closing = threading.Event()
        self.endpoint = Endpoint(
            f"bridge on {url}",
            self._write,
            on_message=self._message,
            on_handshake=self._handshake,
            on_give_up=self._gave_up,
            ack_timeout_s=ack_timeout_s,
            retries=retries,
        )
        self.endpoint.hold()
        self._open(first=True)
        self._thread = threading.Thread(target=self._run, name=f"bridge {url}", daemon=True)
        self._thread.start()

    # The port.

    def _open(self, first: bool = False) -> None:
        try:
            self._port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=0.01, write_timeout=1.0
            )
        except ValueError:
            if first:
                raise  # a URL that can never work: a configuration error
            self._port = None
        except (serial.SerialException, OSError) as error:
            if first:
                log.error(
                    "bridge on %s cannot be opened (retrying every %.0f s): %s",
                    self.url,
                    REOPEN_EVERY_S,
                    error,
                )
            self.problem = f"serial port {self.url}: {error}"
            self._port = None

    def _write(self, frame: bytes) -> None:
        port = self._port
        if port is not None:
            port.write(frame)

    def _run(self) -> None:
        while not self._closing.is_set():
            port = self._port
            if port is None:
                if self._closing.wait(REOPEN_EVERY_S):
                    return
                self._open()
                continue
            try:
                data = port.read(max(1, port.in_waiting))
                if data:
                    self.endpoint.feed(data)
                self._keep_alive()
                self.endpoint.tick()
            except (serial.SerialException, OSError) as error:
                if self._closing.is_set():
                    return
                log.error("bridge on %s: the port failed: %s", self.url, error)
                self._down(f"serial port {self.url}: {error}")
                self.endpoint.deframer.reset()
                self._port = None
                try:
                    port.close()
                except (serial.SerialException, OSError):
                    log.debug("closing %s failed", self.url, exc_info=True)
            except Exception:
                log.exception("bridge on %s: unexpected error", self.url)

    def _keep_alive(self) -> None:
        now = time.monotonic()
        if not self.up:
            if now >= self._next_hello:
                self._next_hello = now + self.hello_every_s
                self.endpoint.send_handshake(Hello())
            return
        heard = self.endpoint.heard_at or 0.0
        if now - heard >= self.ping_every_s and self.endpoint.idle():
            self.endpoint.send(Ping())

    # What the microcontroller says (the link's thread).

    def _handshake(self, message: Message) -> None:
        if isinstance(message, Announce):
            if self.up:
                log.warning(
                    "bridge on %s: the microcontroller announced itself again (boot %08X)",
                    self.url,
                    message.boot_id,
                )
                self._down("the microcontroller restarted its link")
            self._next_hello = 0.0  # say hello at once
            return
        if not isinstance(message, HelloReply):
            log.warning(
                "bridge on %s: ignored a %s from the microcontroller", self.url, type(message).__name__
            )
            return
        if message.major != PROTOCOL_MAJOR:
            self._down(
                f"the microcontroller speaks bridge protocol {message.major}.{message.minor}, "
                f"this gateway {PROTOCOL_MAJOR}.x: update its firmware ({message.firmware})"
            )
            log.error("bridge on %s: %s", self.url, self.problem)
            self._next_hello = time.monotonic() + INCOMPATIBLE_HELLO_EVERY_S
            return
        if self.up:
            return  # a reply to a hello sent before the last one was answered
        rebooted = self.peer is not None and self.peer.boot_id != message.boot_id
        self.peer = message
        with self._lock:
            channels = list(self._channels.items())
            if rebooted:
                for _, channel in channels:
                    channel.switch_on = False
        if rebooted:
            log.warning(
                "bridge on %s: the microcontroller restarted (boot %08X): its relays are off, and stay off",
                self.url,
                message.boot_id,
            )
        self.endpoint.reset()
        self.up, self.problem = True, ""
        self._handshakes += 1
        self._badges_since_handshake = 0
        log.info(
            "bridge on %s: linked to %s (protocol %d.%d, boot %08X, %d channels)",
            self.url,
            message.firmware,
            message.major,
            message.minor,
            message.boot_id,
            message.channels,
        )
        for number, channel in channels:
            # Say again what the relays and lights must be: off for a relay never switched on.
            if channel.has_switch:
                self.endpoint.send(SwitchSet(number, channel.switch_on), coalesce=("switch", number))
            if channel.shown is not None:
                self.endpoint.send(channel.shown, coalesce=("indicate", number))

    def _gave_up(self, ticket: Ticket) -> None:
        log.error(
            "bridge on %s: %s went unacknowledged: the link is down; saying hello again",
            self.url,
            type(ticket.message).__name__,
        )
        self._down("the microcontroller stopped acknowledging")

    def _down(self, problem: str) -> None:
        self.up, self.problem = False, problem
        self.endpoint.hold()
        self._next_hello = 0.0

    def _message(self, message: Message) -> None:
        if isinstance(message, Badge):
            self._badge(message)
        elif isinstance(message, Button):
            channel = self._channel(message.channel)
            with self._lock:
                channel.presses += 1
                listener = channel.button_listener
            if listener is not None:
                listener()
        elif isinstance(message, Current):
            channel = self._channel(message.channel)
            with self._lock:
                channel.milliamps, channel.current_at = message.milliamps, time.monotonic()
        else:
            log.warning(
                "bridge on %s: ignored a %s from the microcontroller", self.url, type(message).__name__
            )

    def _badge(self, message: Badge) -> None:
        uid = message.uid.hex().upper()
        now = time.monotonic()
        self._badges_since_handshake += 1
        last = self._last_badge
        if (
            self._badges_since_handshake == 1
            and self._handshakes > 1
            and last is not None
            and last[0] == uid
            and now - last[1] < SAME_BADGE_AFTER_HANDSHAKE_S
        ):
            log.info(
                "bridge on %s: badge %s sent again across a handshake: the same tap, dropped", self.url, uid
            )
            return
        self._last_badge = (uid, now)
        channel = self._channel(message.channel)
        with self._lock:
            channel.taps.append(uid)
            listener = channel.badge_listener
        log.info("bridge on %s: badge %s on channel %d", self.url, uid, message.channel)
        if listener is not None:
            listener()

    def _channel(self, number: int) -> Channel:
        with self._lock:
            return self._channels.setdefault(number, Channel())

    # What the parts ask (the gateway's worker).

    def check(self) -> None:
        """Raise :class:`LinkDown` if the microcontroller cannot be relied on now."""
        if self._closing.is_set():
            raise BridgeClosed(f"bridge on {self.url} is closed")
        if not self.up and time.monotonic() - self._started_at > self.start_grace_s:
            raise LinkDown(f"bridge on {self.url}: {self.problem}")

    def take_badge(self, number: int) -> str | None:
        channel = self._channel(number)
        with self._lock:
            if channel.taps:
                return channel.taps.popleft()
        self.check()
        return None

    def take_press(self, number: int) -> bool:
        channel = self._channel(number)
        with self._lock:
            if channel.presses:
                channel.presses -= 1
                return True
        self.check()
        return False

    def amps(self, number: int) -> float:
        self.check()
        channel = self._channel(number)
        with self._lock:
            milliamps, at = channel.milliamps, channel.current_at
        if at is None:
            if self.up or time.monotonic() - self._started_at <= self.start_grace_s:
                return 0.0
            raise LinkDown(f"bridge on {self.url}: no current reported on channel {number}")
        if time.monotonic() - at > self.current_stale_s:
            raise LinkDown(
                f"bridge on {self.url}: no current reported on channel {number} for {time.monotonic() - at:.0f} s"
            )
        return milliamps / 1000

    def set_switch(self, number: int, on: bool) -> None:
        """Switch the relay of channel ``number`` and wait for the acknowledgement."""
        self.check()
        channel = self._channel(number)
        ticket = self.endpoint.send(SwitchSet(number, on), coalesce=("switch", number))
        timeout = (self.endpoint.retries + 2) * self.endpoint.ack_timeout_s
        if not ticket.wait(timeout):
            raise LinkDown(
                f"bridge on {self.url}: switching channel {number} {'on' if on else 'off'} was not acknowledged ({ticket.error or 'timeout'})"
            )
        with self._lock:
            channel.switch_on = on

    def switch_is_on(self, number: int) -> bool:
        if self._closing.is_set():
            raise BridgeClosed(f"bridge on {self.url} is closed")
        channel = self._channel(number)
        with self._lock:
            return channel.switch_on

    def add_switch(self, number: int) -> None:
        """A switch part uses channel ``number``: it is switched off at the next handshake."""
        channel = self._channel(number)
        with self._lock:
            channel.has_switch = True
        if self.up:
            self.endpoint.send(SwitchSet(number, False), coalesce=("switch", number))

    def indicate(self, number: int, signal: SignalCode, family: int) -> None:
        """Show a signal (sent in the background: the lights never hold the worker up)."""
        self.check()
        message = Indicate(number, signal, family)
        channel = self._channel(number)
        with self._lock:
            channel.shown = message
        self.endpoint.send(message, coalesce=("indicate", number))

    def set_listener(self, number: int, kind: str, listener: Callable[[], None] | None) -> None:
        channel = self._channel(number)
        with self._lock:
            if kind == "badge":
                channel.badge_listener = listener
            else:
                channel.button_listener = listener

    def close(self) -> None:
        self._closing.set()
        self.endpoint.fail_all("the bridge is closing")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                log.debug("closing %s failed", self.url, exc_info=True)

"""A machine's parts backed by a microcontroller: what the gateway's factory builds for
``type = "bridge"`` (registered as the ``bridge`` entry point of ``atelier_access.parts``).

Each part meets the controller's interface structurally (``read``/``amps``/``on``...,
``close``) without importing the controller: the layering of the packages forbids it.
Every part on the same port shares one :class:`~firmware_bridge.link.BridgeLink`;
``channel`` tells apart the machines one microcontroller serves.
"""

import threading
from collections.abc import Callable

from firmware_bridge.errors import BridgeClosed
from firmware_bridge.link import BridgeLink
from firmware_bridge.messages import SignalCode
from protocol.messages import Reason
from protocol.refusals import family_of

_links: dict[str, tuple[BridgeLink, int]] = {}
_links_lock = threading.Lock()


def shared_link(port: str, baudrate: int = 115200) -> BridgeLink:
    """The link on ``port``, opened by its first part and closed by its last."""
    with _links_lock:
        link, users = _links.get(port, (None, 0))
        if link is None:
            link = BridgeLink(port, baudrate=baudrate)
        elif link.baudrate != baudrate:
            raise ValueError(f"the bridge on {port} already runs at {link.baudrate} baud, not {baudrate}")
        _links[port] = (link, users + 1)
        return link


def release_link(link: BridgeLink) -> None:
    with _links_lock:
        known, users = _links.get(link.url, (None, 0))
        if known is not link:
            return
        if users > 1:
            _links[link.url] = (link, users - 1)
            return
        del _links[link.url]
    link.close()


class _Part:
    def __init__(self, port: str, channel: int, baudrate: int) -> None:
        if not 0 <= channel <= 15:
            raise ValueError(f"a bridge channel is 0 to 15, not {channel}")
        self.channel = channel
        self.link = shared_link(port, baudrate)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise BridgeClosed(f"{type(self).__name__} on {self.link.url} is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            release_link(self.link)


class BridgeBadgeReader(_Part):
    def read(self) -> str | None:
        self._check_open()
        return self.link.take_badge(self.channel)

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        self.link.set_listener(self.channel, "badge", listener)

    def close(self) -> None:
        self.link.set_listener(self.channel, "badge", None)
        super().close()


class BridgeButton(_Part):
    def pressed(self) -> bool:
        self._check_open()
        return self.link.take_press(self.channel)

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        self.link.set_listener(self.channel, "button", listener)

    def close(self) -> None:
        self.link.set_listener(self.channel, "button", None)
        super().close()


class BridgeCurrentSensor(_Part):
    def amps(self) -> float:
        self._check_open()
        return self.link.amps(self.channel)


class BridgeSwitch(_Part):
    """The relay of a channel: it starts off (sent at every handshake until switched on)."""

    def __init__(self, port: str, channel: int, baudrate: int) -> None:
        super().__init__(port, channel, baudrate)
        self.link.add_switch(channel)

    def on(self) -> None:
        self._check_open()
        self.link.set_switch(self.channel, True)

    def off(self) -> None:
        self._check_open()
        self.link.set_switch(self.channel, False)

    @property
    def is_on(self) -> bool:
        self._check_open()
        return self.link.switch_is_on(self.channel)


class BridgeIndicator(_Part):
    def show(self, signal: str, reason: Reason | None = None) -> None:
        """``signal`` is the controller's Signal (a str enum: "locked", "denied" ...)."""
        self._check_open()
        code = SignalCode[str(signal).upper()]
        family = int(family_of(reason)) if code is SignalCode.DENIED else 0
        self.link.indicate(self.channel, code, family)


# What the gateway's factory calls, by these names (controller/hardware/factory.py).


def badge_reader(*, port: str, channel: int = 0, baudrate: int = 115200) -> BridgeBadgeReader:
    return BridgeBadgeReader(port, channel, baudrate)


def current_sensor(*, port: str, channel: int = 0, baudrate: int = 115200) -> BridgeCurrentSensor:
    return BridgeCurrentSensor(port, channel, baudrate)


def switch(*, port: str, channel: int = 0, baudrate: int = 115200) -> BridgeSwitch:
    return BridgeSwitch(port, channel, baudrate)


def indicator(*, port: str, channel: int = 0, baudrate: int = 115200) -> BridgeIndicator:
    return BridgeIndicator(port, channel, baudrate)


def button(*, port: str, channel: int = 0, baudrate: int = 115200) -> BridgeButton:
    return BridgeButton(port, channel, baudrate)

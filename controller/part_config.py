"""The configuration of a machine's parts: one struct per ``type``, like gpiozero's pin factories.

Each part table of a ``[[machine]]`` says ``type = "..."``, and msgspec picks the struct
by that tag (a tagged union), so an unknown type or a key that does not belong to the
chosen type is refused with where and why (:mod:`controller.config_check`). The factory
(:mod:`controller.hardware.factory`) has one entry per type.

A msgspec struct has one base with fields: a Shelly or bridge current sensor is a
:class:`CurrentSection` that repeats the few keys of its connection, and
:data:`BridgePart` is the union of the bridge's part types.
"""

import re
from typing import Annotated

from msgspec import Meta

from controller.config_check import Check, Part
from protocol.mqtt import BrokerURL

_PIN_NAME = re.compile(r"(GPIO|BCM|BOARD|J8:)?[0-9]{1,2}")
_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_/.-]{0,127}")


def _check_pin(value: int | str) -> None:
    if isinstance(value, int) and 0 <= value <= 53:
        return
    if isinstance(value, str) and _PIN_NAME.fullmatch(value):
        return
    raise ValueError(
        f"a pin is a BCM number from 0 to 53 or a name like 'GPIO17' or 'BOARD11', not {value!r}"
    )


def _check_topic_prefix(value: str) -> None:
    if not _TOPIC_PREFIX.fullmatch(value):
        raise ValueError(f"a Shelly topic prefix has letters, digits and - _ / . only, not {value!r}")


def usable_url(value: str) -> None:
    BrokerURL.parse(value)  # raises BadBrokerURL, a ValueError, with the reason


Pin = Annotated[int | str, Check(_check_pin)]
"""A BCM number (17) or a gpiozero pin name ("GPIO17", "BOARD11")."""

SerialPort = Annotated[str, Meta(min_length=1, max_length=200)]
"""A pyserial port URL: "/dev/serial0", "/dev/ttyUSB0", "socket://127.0.0.1:7000", "loop://"."""

Baudrate = Annotated[int, Meta(ge=1200, le=4_000_000)]
Channel = Annotated[int, Meta(ge=0, le=15)]

BrokerUrlText = Annotated[str, Check(usable_url)]
"""An MQTT broker URL (``mqtt://`` or ``mqtts://``), checked by :class:`BrokerURL`."""

ShellyDevice = Annotated[str, Meta(min_length=1, max_length=128), Check(_check_topic_prefix)]
"""The plug's MQTT topic prefix (its device id by default, e.g. "shellyplus1pm-a8032ab12345")."""

ShellySwitchId = Annotated[int, Meta(ge=0, le=3)]
ShellyTimeoutMs = Annotated[int, Meta(ge=100, le=10_000)]
"""How long a switch command waits for the plug's answer before the machine shows an error."""


# Badge readers.


class SimulatedReaderConfig(Part, frozen=True, kw_only=True, tag="simulated"):
    pass


class Rdm6300ReaderConfig(Part, frozen=True, kw_only=True, tag="rdm6300"):
    """An RDM6300 (125 kHz, EM4100) on a serial port, 9600 baud."""

    port: SerialPort
    debounce_s: Annotated[float, Meta(ge=0, le=60)] = 1.0
    """A card held on the reader counts once, and again after it has been away this long."""


class Pn532ReaderConfig(Part, frozen=True, kw_only=True, tag="pn532"):
    """A PN532 (13.56 MHz, ISO 14443A) in HSU mode on a serial port, 115200 baud."""

    port: SerialPort
    debounce_s: Annotated[float, Meta(ge=0, le=60)] = 1.0
    poll_interval_ms: Annotated[int, Meta(ge=10, le=5000)] = 100


class _BridgeSection(Part, frozen=True, kw_only=True, tag="bridge"):
    """A part of a machine whose I/O a microcontroller does, over the firmware bridge.

    Every bridge part with the same ``port`` shares one link; ``channel`` tells apart the
    machines one microcontroller serves (docs/firmware-protocol.md).
    """

    port: SerialPort
    channel: Channel = 0
    baudrate: Baudrate = 115200


class BridgeReaderConfig(_BridgeSection, frozen=True, kw_only=True):
    pass


ReaderConfig = SimulatedReaderConfig | Rdm6300ReaderConfig | Pn532ReaderConfig | BridgeReaderConfig


# Current sensors.


class CurrentSection(Part, frozen=True, kw_only=True):
    """What every current sensor has: the thresholds that tell running from idle, and calibration.

    Hysteresis: the machine counts as running once the current has stayed above
    ``running_above_a`` for ``running_after_s``, and as idle again once it has
    stayed below ``idle_below_a`` for ``idle_after_s``.
    """

    running_above_a: Annotated[float, Meta(gt=0, le=1000)] = 0.5
    idle_below_a: Annotated[float, Meta(ge=0, le=1000)] = 0.3
    running_after_s: Annotated[float, Meta(ge=0, le=600)] = 2.0
    idle_after_s: Annotated[float, Meta(ge=0, le=3600)] = 5.0
    scale: Annotated[float, Meta(gt=0, le=1000)] = 1.0
    """Calibration: every raw reading becomes ``max(0, raw * scale + offset_a)`` amperes,
    before the thresholds above see it."""
    offset_a: Annotated[float, Meta(ge=-100, le=100)] = 0.0
    voltage_v: Annotated[float, Meta(gt=0, le=1000)] | None = None
    """The machine's supply voltage. When set, sessions meter energy (``energy_wh``) and
    telemetry carries power; absent, neither is reported."""
    power_factor: Annotated[float, Meta(gt=0, le=1)] = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.idle_below_a > self.running_above_a:
            raise ValueError(
                f"idle_below_a ({self.idle_below_a}) must not be above running_above_a ({self.running_above_a})"
            )


class SimulatedCurrentConfig(CurrentSection, frozen=True, kw_only=True, tag="simulated"):
    """A simulated clamp."""

    noise_a: Annotated[float, Meta(ge=0, le=10)] = 0.0


class Mcp3008CurrentConfig(CurrentSection, frozen=True, kw_only=True, tag="mcp3008"):
    """An SCT-013 clamp on a channel of an MCP3008 on the Pi's SPI bus (docs/operations.md)."""

    channel: Annotated[int, Meta(ge=0, le=7)]
    spi_device: Annotated[int, Meta(ge=0, le=1)] = 0
    """The MCP3008's chip select: 0 for CE0 (GPIO8), 1 for CE1 (GPIO7)."""
    amps_per_volt: Annotated[float, Meta(gt=0, le=10_000)] = 30.0
    """The clamp's ratio: 30 for an SCT-013-030 (1 V at 30 A); for a current-output
    SCT-013-000 (2000 turns), 2000 / the burden resistor in ohms."""
    mains_hz: Annotated[float, Meta(ge=40, le=70)] = 50.0
    cycles: Annotated[int, Meta(ge=1, le=100)] = 10
    """Each measurement is the RMS over this many whole mains cycles."""
    every_s: Annotated[float, Meta(ge=0.05, le=60)] = 0.5
    vref: Annotated[float, Meta(gt=0, le=5.5)] = 3.3


class ShellyCurrentConfig(CurrentSection, frozen=True, kw_only=True, tag="shelly"):
    """A Shelly Plus 1PM (Gen2 RPC over MQTT) measuring the machine's current (and maybe switching it)."""

    device: ShellyDevice
    mqtt_url: BrokerUrlText
    """The broker the plug is connected to (its own settings: Settings → MQTT)."""
    switch_id: ShellySwitchId = 0
    timeout_ms: ShellyTimeoutMs = 2000
    poll_s: Annotated[float, Meta(ge=0.2, le=60)] = 1.0
    """How often the plug is asked for its status (it also reports changes by itself)."""


class BridgeCurrentConfig(CurrentSection, frozen=True, kw_only=True, tag="bridge"):
    """A current sensor read by the firmware bridge's microcontroller (see :class:`BridgeReaderConfig`)."""

    port: SerialPort
    channel: Channel = 0
    baudrate: Baudrate = 115200


CurrentConfig = SimulatedCurrentConfig | Mcp3008CurrentConfig | ShellyCurrentConfig | BridgeCurrentConfig


# Switches, indicators, buttons.


class GpioSwitchConfig(Part, frozen=True, kw_only=True, tag="gpio"):
    """A relay or SSR board on a GPIO pin; ``active_high = false`` for boards that switch on a low pin."""

    pin: Pin
    active_high: bool = True


class ShellySwitchConfig(Part, frozen=True, kw_only=True, tag="shelly"):
    """A Shelly Plus 1PM (Gen2 RPC over MQTT) switching the machine."""

    device: ShellyDevice
    mqtt_url: BrokerUrlText
    """The broker the plug is connected to (its own settings: Settings → MQTT)."""
    switch_id: ShellySwitchId = 0
    timeout_ms: ShellyTimeoutMs = 2000


class BridgeSwitchConfig(_BridgeSection, frozen=True, kw_only=True):
    pass


SwitchConfig = GpioSwitchConfig | ShellySwitchConfig | BridgeSwitchConfig


class GpioIndicatorConfig(Part, frozen=True, kw_only=True, tag="gpio"):
    """A green and a red LED (each through its resistor) and an optional active buzzer."""

    green_pin: Pin
    red_pin: Pin
    buzzer_pin: Pin | None = None


class BridgeIndicatorConfig(_BridgeSection, frozen=True, kw_only=True):
    pass


IndicatorConfig = GpioIndicatorConfig | BridgeIndicatorConfig


class SimulatedButtonConfig(Part, frozen=True, kw_only=True, tag="simulated"):
    pass


class GpioButtonConfig(Part, frozen=True, kw_only=True, tag="gpio"):
    """A push button between ``pin`` and ground; ``pull_up = false`` if it pulls the pin high instead."""

    pin: Pin
    pull_up: bool = True
    bounce_ms: Annotated[int, Meta(ge=0, le=1000)] = 50


class BridgeButtonConfig(_BridgeSection, frozen=True, kw_only=True):
    pass


ButtonConfig = SimulatedButtonConfig | GpioButtonConfig | BridgeButtonConfig

BridgePart = (
    BridgeReaderConfig | BridgeCurrentConfig | BridgeSwitchConfig | BridgeIndicatorConfig | BridgeButtonConfig
)
"""A part the firmware bridge drives: each has a ``port``, a ``channel`` and a ``baudrate``."""

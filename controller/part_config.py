"""The configuration of a machine's parts: one model per ``type``, like gpiozero's pin factories.

Each part table of a ``[[machine]]`` says ``type = "..."``, and pydantic picks the
model by that tag (a discriminated union), so an unknown type or a key that does
not belong to the chosen type is refused with where and why. The factory
(:mod:`controller.hardware.factory`) has one entry per type.
"""

import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator, model_validator

from protocol.mqtt import BrokerURL

_PIN_NAME = re.compile(r"^(GPIO|BCM|BOARD|J8:)?\d{1,2}$")
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_/.-]{0,127}$")


def _check_pin(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 53:
        return value
    if isinstance(value, str) and _PIN_NAME.match(value):
        return value
    raise ValueError(
        f"a pin is a BCM number from 0 to 53 or a name like 'GPIO17' or 'BOARD11', not {value!r}"
    )


Pin = Annotated[int | str, PlainValidator(_check_pin)]
"""A BCM number (17) or a gpiozero pin name ("GPIO17", "BOARD11")."""

SerialPort = Annotated[str, Field(min_length=1, max_length=200)]
"""A pyserial port URL: "/dev/serial0", "/dev/ttyUSB0", "socket://127.0.0.1:7000", "loop://"."""

Baudrate = Annotated[int, Field(ge=1200, le=4_000_000)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Badge readers.


class SimulatedReaderConfig(Section):
    type: Literal["simulated"]


class Rdm6300ReaderConfig(Section):
    """An RDM6300 (125 kHz, EM4100) on a serial port, 9600 baud."""

    type: Literal["rdm6300"]
    port: SerialPort
    debounce_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    """A card held on the reader counts once, and again after it has been away this long."""


class Pn532ReaderConfig(Section):
    """A PN532 (13.56 MHz, ISO 14443A) in HSU mode on a serial port, 115200 baud."""

    type: Literal["pn532"]
    port: SerialPort
    debounce_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    poll_interval_ms: Annotated[int, Field(ge=10, le=5000)] = 100


class BridgePart(Section):
    """A part of a machine whose I/O a microcontroller does, over the firmware bridge.

    Every bridge part with the same ``port`` shares one link; ``channel`` tells apart the
    machines one microcontroller serves (docs/firmware-protocol.md).
    """

    type: Literal["bridge"]
    port: SerialPort
    channel: Annotated[int, Field(ge=0, le=15)] = 0
    baudrate: Baudrate = 115200


class BridgeReaderConfig(BridgePart):
    pass


ReaderConfig = Annotated[
    SimulatedReaderConfig | Rdm6300ReaderConfig | Pn532ReaderConfig | BridgeReaderConfig,
    Field(discriminator="type"),
]


# Current sensors.


class CurrentSection(Section):
    """What every current sensor has: the thresholds that tell running from idle, and calibration.

    Hysteresis: the machine counts as running once the current has stayed above
    ``running_above_a`` for ``running_after_s``, and as idle again once it has
    stayed below ``idle_below_a`` for ``idle_after_s``.
    """

    running_above_a: Annotated[float, Field(gt=0, le=1000)] = 0.5
    idle_below_a: Annotated[float, Field(ge=0, le=1000)] = 0.3
    running_after_s: Annotated[float, Field(ge=0, le=600)] = 2.0
    idle_after_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    scale: Annotated[float, Field(gt=0, le=1000)] = 1.0
    """Calibration: every raw reading becomes ``max(0, raw * scale + offset_a)`` amperes,
    before the thresholds above see it."""
    offset_a: Annotated[float, Field(ge=-100, le=100)] = 0.0
    voltage_v: Annotated[float, Field(gt=0, le=1000)] | None = None
    """The machine's supply voltage. When set, sessions meter energy (``energy_wh``) and
    telemetry carries power; absent, neither is reported."""
    power_factor: Annotated[float, Field(gt=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if self.idle_below_a > self.running_above_a:
            raise ValueError(
                f"idle_below_a ({self.idle_below_a}) must not be above running_above_a ({self.running_above_a})"
            )
        return self


class SimulatedCurrentConfig(CurrentSection):
    """A simulated clamp."""

    type: Literal["simulated"]
    noise_a: Annotated[float, Field(ge=0, le=10)] = 0.0


class Mcp3008CurrentConfig(CurrentSection):
    """An SCT-013 clamp on a channel of an MCP3008 on the Pi's SPI bus (docs/operations.md)."""

    type: Literal["mcp3008"]
    channel: Annotated[int, Field(ge=0, le=7)]
    spi_device: Annotated[int, Field(ge=0, le=1)] = 0
    """The MCP3008's chip select: 0 for CE0 (GPIO8), 1 for CE1 (GPIO7)."""
    amps_per_volt: Annotated[float, Field(gt=0, le=10_000)] = 30.0
    """The clamp's ratio: 30 for an SCT-013-030 (1 V at 30 A); for a current-output
    SCT-013-000 (2000 turns), 2000 / the burden resistor in ohms."""
    mains_hz: Annotated[float, Field(ge=40, le=70)] = 50.0
    cycles: Annotated[int, Field(ge=1, le=100)] = 10
    """Each measurement is the RMS over this many whole mains cycles."""
    every_s: Annotated[float, Field(ge=0.05, le=60)] = 0.5
    vref: Annotated[float, Field(gt=0, le=5.5)] = 3.3


class ShellyPart(Section):
    """A Shelly Plus 1PM (Gen2 RPC over MQTT): it switches the machine and measures its current."""

    type: Literal["shelly"]
    device: Annotated[str, Field(min_length=1, max_length=128)]
    """The plug's MQTT topic prefix (its device id by default, e.g. "shellyplus1pm-a8032ab12345")."""
    mqtt_url: str
    """The broker the plug is connected to (its own settings: Settings → MQTT)."""
    switch_id: Annotated[int, Field(ge=0, le=3)] = 0
    timeout_ms: Annotated[int, Field(ge=100, le=10_000)] = 2000
    """How long a switch command waits for the plug's answer before the machine shows an error."""

    @field_validator("device")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not _TOPIC_PREFIX.match(value):
            raise ValueError(f"a Shelly topic prefix has letters, digits and - _ / . only, not {value!r}")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        BrokerURL.parse(value)  # raises BadBrokerURL, a ValueError, with the reason
        return value


class ShellyCurrentConfig(CurrentSection, ShellyPart):
    poll_s: Annotated[float, Field(ge=0.2, le=60)] = 1.0
    """How often the plug is asked for its status (it also reports changes by itself)."""


class BridgeCurrentConfig(CurrentSection, BridgePart):
    pass


CurrentConfig = Annotated[
    SimulatedCurrentConfig | Mcp3008CurrentConfig | ShellyCurrentConfig | BridgeCurrentConfig,
    Field(discriminator="type"),
]


# Switches, indicators, buttons.


class GpioSwitchConfig(Section):
    """A relay or SSR board on a GPIO pin; ``active_high = false`` for boards that switch on a low pin."""

    type: Literal["gpio"]
    pin: Pin
    active_high: bool = True


class ShellySwitchConfig(ShellyPart):
    pass


class BridgeSwitchConfig(BridgePart):
    pass


SwitchConfig = Annotated[
    GpioSwitchConfig | ShellySwitchConfig | BridgeSwitchConfig, Field(discriminator="type")
]


class GpioIndicatorConfig(Section):
    """A green and a red LED (each through its resistor) and an optional active buzzer."""

    type: Literal["gpio"]
    green_pin: Pin
    red_pin: Pin
    buzzer_pin: Pin | None = None


class BridgeIndicatorConfig(BridgePart):
    pass


IndicatorConfig = Annotated[GpioIndicatorConfig | BridgeIndicatorConfig, Field(discriminator="type")]


class SimulatedButtonConfig(Section):
    type: Literal["simulated"]


class GpioButtonConfig(Section):
    """A push button between ``pin`` and ground; ``pull_up = false`` if it pulls the pin high instead."""

    type: Literal["gpio"]
    pin: Pin
    pull_up: bool = True
    bounce_ms: Annotated[int, Field(ge=0, le=1000)] = 50


class BridgeButtonConfig(BridgePart):
    pass


ButtonConfig = Annotated[
    SimulatedButtonConfig | GpioButtonConfig | BridgeButtonConfig, Field(discriminator="type")
]

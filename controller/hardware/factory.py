"""Build a machine's parts from its configuration, by type name.

Like gpiozero's pin factories: the configuration says ``type = "simulated"``,
``"gpio"``, ``"rdm6300"``, ``"mcp3008"``, ``"shelly"``, ``"bridge"`` ..., and a table maps
each name to what builds it. A new driver is one more entry here and one more
config model in :mod:`controller.part_config`.

The firmware bridge's parts come from another package, which the controller may not
import (tests/test_layering.py): it registers itself as the ``bridge`` entry point of
:data:`PART_PLUGINS` in pyproject.toml, as gpiozero's pin factories do, and its parts
meet the interfaces of :mod:`controller.hardware.interfaces` structurally.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from controller.config import (
    BridgePart,
    ButtonConfig,
    CurrentConfig,
    GpioButtonConfig,
    GpioIndicatorConfig,
    GpioSwitchConfig,
    IndicatorConfig,
    MachineSection,
    Mcp3008CurrentConfig,
    Pn532ReaderConfig,
    Rdm6300ReaderConfig,
    ReaderConfig,
    ShellyCurrentConfig,
    ShellySwitchConfig,
    SimulatedCurrentConfig,
    SwitchConfig,
)
from controller.hardware.clamp import Mcp3008Clamp
from controller.hardware.gpio import GpioButton, LedIndicator, PinFactory, RelaySwitch
from controller.hardware.interfaces import (
    BadgeReader,
    BadHardwareConfig,
    CurrentSensor,
    HardwareError,
    Indicator,
    PartFailed,
    PushButton,
    Switch,
)
from controller.hardware.pn532 import Pn532Reader
from controller.hardware.rdm6300 import Rdm6300Reader
from controller.hardware.shelly import ShellyCurrent, ShellySwitch
from controller.hardware.simulated import SimulatedBadgeReader, SimulatedButton, SimulatedCurrentSource

C = TypeVar("C")
T = TypeVar("T")

PART_PLUGINS = "atelier_access.parts"
"""Entry points that provide part types from another package (the firmware bridge's
``bridge``): the controller never imports those packages by name (tests/test_layering.py)."""


def _is(config: object, kind: type[T]) -> T:
    # The tagged union already chose the struct by its type; this only narrows it.
    if not isinstance(config, kind):
        raise BadHardwareConfig(f"expected a {kind.__name__}, not {config!r}")
    return config


def _plugin(name: str) -> Any:
    """The part plug-in registered as ``name`` (a module with one builder per part kind)."""
    for entry in entry_points(group=PART_PLUGINS):
        if entry.name == name:
            return entry.load()
    raise BadHardwareConfig(
        f"parts of type {name!r} need a plug-in that is not installed (entry point group {PART_PLUGINS}): "
        "install atelier-access again (pip install -e . in a checkout)"
    )


def _bridged(kind: str) -> Callable[[object, PinFactory], Any]:
    """A builder of the firmware bridge's ``kind`` part, from its ``type = "bridge"`` table."""

    def build(config: object, pins: PinFactory) -> Any:
        if not isinstance(config, BridgePart):
            raise BadHardwareConfig(f"expected a bridge part, not {config!r}")
        part = config
        try:
            return getattr(_plugin("bridge"), kind)(
                port=part.port, channel=part.channel, baudrate=part.baudrate
            )
        except ValueError as error:
            raise BadHardwareConfig(f"bridge {kind} on {part.port}: {error}") from error
        except OSError as error:
            raise PartFailed(f"bridge {kind} on {part.port}: {error}") from error

    return build


def _rdm6300(config: ReaderConfig, pins: PinFactory) -> BadgeReader:
    reader = _is(config, Rdm6300ReaderConfig)
    return Rdm6300Reader(reader.port, debounce_s=reader.debounce_s)


def _pn532(config: ReaderConfig, pins: PinFactory) -> BadgeReader:
    reader = _is(config, Pn532ReaderConfig)
    return Pn532Reader(
        reader.port, debounce_s=reader.debounce_s, poll_interval_s=reader.poll_interval_ms / 1000
    )


def _mcp3008(config: CurrentConfig, pins: PinFactory) -> CurrentSensor:
    clamp = _is(config, Mcp3008CurrentConfig)
    return Mcp3008Clamp(
        clamp.channel,
        amps_per_volt=clamp.amps_per_volt,
        mains_hz=clamp.mains_hz,
        cycles=clamp.cycles,
        every_s=clamp.every_s,
        vref=clamp.vref,
        device=clamp.spi_device,
        pin_factory=pins,
    )


def _shelly_current(config: CurrentConfig, pins: PinFactory) -> CurrentSensor:
    plug = _is(config, ShellyCurrentConfig)
    return ShellyCurrent(plug.mqtt_url, plug.device, plug.switch_id, poll_s=plug.poll_s)


def _shelly_switch(config: SwitchConfig, pins: PinFactory) -> Switch:
    plug = _is(config, ShellySwitchConfig)
    return ShellySwitch(plug.mqtt_url, plug.device, plug.switch_id, timeout_s=plug.timeout_ms / 1000)


def _gpio_switch(config: SwitchConfig, pins: PinFactory) -> Switch:
    relay = _is(config, GpioSwitchConfig)
    return RelaySwitch(relay.pin, active_high=relay.active_high, pin_factory=pins)


def _gpio_indicator(config: IndicatorConfig, pins: PinFactory) -> Indicator:
    lights = _is(config, GpioIndicatorConfig)
    return LedIndicator(lights.green_pin, lights.red_pin, buzzer_pin=lights.buzzer_pin, pin_factory=pins)


def _gpio_button(config: ButtonConfig, pins: PinFactory) -> PushButton:
    button = _is(config, GpioButtonConfig)
    return GpioButton(button.pin, pull_up=button.pull_up, bounce_s=button.bounce_ms / 1000, pin_factory=pins)


READERS: dict[str, Callable[[ReaderConfig, PinFactory], BadgeReader]] = {
    "simulated": lambda config, pins: SimulatedBadgeReader(),
    "rdm6300": _rdm6300,
    "pn532": _pn532,
    "bridge": _bridged("badge_reader"),
}
CURRENT_SENSORS: dict[str, Callable[[CurrentConfig, PinFactory], CurrentSensor]] = {
    "simulated": lambda config, pins: SimulatedCurrentSource(
        noise_a=_is(config, SimulatedCurrentConfig).noise_a
    ),
    "mcp3008": _mcp3008,
    "shelly": _shelly_current,
    "bridge": _bridged("current_sensor"),
}
SWITCHES: dict[str, Callable[[SwitchConfig, PinFactory], Switch]] = {
    "gpio": _gpio_switch,
    "shelly": _shelly_switch,
    "bridge": _bridged("switch"),
}
INDICATORS: dict[str, Callable[[IndicatorConfig, PinFactory], Indicator]] = {
    "gpio": _gpio_indicator,
    "bridge": _bridged("indicator"),
}
BUTTONS: dict[str, Callable[[ButtonConfig, PinFactory], PushButton]] = {
    "simulated": lambda config, pins: SimulatedButton(),
    "gpio": _gpio_button,
    "bridge": _bridged("button"),
}


@dataclass(slots=True)
class MachineParts:
    """The hardware at one machine."""

    reader: BadgeReader
    current: CurrentSensor
    switch: Switch
    indicator: Indicator
    button: PushButton | None = None

    def close(self) -> None:
        """Release every part; the relay keeps its output as it is (see :class:`Switch`)."""
        parts = (self.reader, self.current, self.switch, self.indicator, self.button)
        for part in parts:
            if part is not None:
                with contextlib.suppress(HardwareError):
                    part.close()


def _lookup(table: dict[str, C], kind: str, machine_id: str, what: str) -> C:
    try:
        return table[kind]
    except KeyError:
        raise BadHardwareConfig(
            f"machine {machine_id}: no {what} of type {kind!r} (known: {', '.join(sorted(table))})"
        ) from None


def build_parts(config: MachineSection, pin_factory: PinFactory) -> MachineParts:
    """Build the parts of machine ``config``; on failure, release what was built and raise."""
    built: list[BadgeReader | CurrentSensor | Switch | Indicator | PushButton] = []
    try:
        reader = _lookup(READERS, config.reader.type, config.id, "badge reader")(config.reader, pin_factory)
        built.append(reader)
        current = _lookup(CURRENT_SENSORS, config.current.type, config.id, "current sensor")(
            config.current, pin_factory
        )
        built.append(current)
        switch = _lookup(SWITCHES, config.switch.type, config.id, "switch")(config.switch, pin_factory)
        built.append(switch)
        indicator = _lookup(INDICATORS, config.indicator.type, config.id, "indicator")(
            config.indicator, pin_factory
        )
        built.append(indicator)
        button = (
            None
            if config.button is None
            else _lookup(BUTTONS, config.button.type, config.id, "button")(config.button, pin_factory)
        )
    except BaseException:
        for part in reversed(built):
            with contextlib.suppress(HardwareError):
                part.close()
        raise
    return MachineParts(reader, current, switch, indicator, button)

"""Build a machine's parts from its configuration, by type name.

Like gpiozero's pin factories: the configuration says ``type = "simulated"``
or ``type = "gpio"``, and a table maps each name to the class that does it.
A new driver (a serial reader, an ADC clamp, the firmware bridge) is one more
entry here and one more config model in :mod:`controller.config`.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from controller.config import (
    ButtonConfig,
    GpioButtonConfig,
    GpioIndicatorConfig,
    GpioSwitchConfig,
    MachineSection,
    SimulatedCurrentConfig,
    SimulatedReaderConfig,
)
from controller.hardware.gpio import GpioButton, LedIndicator, PinFactory, RelaySwitch
from controller.hardware.interfaces import (
    BadgeReader,
    BadHardwareConfig,
    CurrentSensor,
    HardwareError,
    Indicator,
    PushButton,
    Switch,
)
from controller.hardware.simulated import SimulatedBadgeReader, SimulatedButton, SimulatedCurrentSource

ReaderConfig = SimulatedReaderConfig
CurrentConfig = SimulatedCurrentConfig
SwitchConfig = GpioSwitchConfig
IndicatorConfig = GpioIndicatorConfig

C = TypeVar("C")

READERS: dict[str, Callable[[ReaderConfig, PinFactory], BadgeReader]] = {
    "simulated": lambda config, pins: SimulatedBadgeReader(),
}
CURRENT_SENSORS: dict[str, Callable[[CurrentConfig, PinFactory], CurrentSensor]] = {
    "simulated": lambda config, pins: SimulatedCurrentSource(noise_a=config.noise_a),
}
SWITCHES: dict[str, Callable[[SwitchConfig, PinFactory], Switch]] = {
    "gpio": lambda config, pins: RelaySwitch(config.pin, active_high=config.active_high, pin_factory=pins),
}
INDICATORS: dict[str, Callable[[IndicatorConfig, PinFactory], Indicator]] = {
    "gpio": lambda config, pins: LedIndicator(
        config.green_pin, config.red_pin, buzzer_pin=config.buzzer_pin, pin_factory=pins
    ),
}


def _gpio_button(config: ButtonConfig, pins: PinFactory) -> PushButton:
    if not isinstance(config, GpioButtonConfig):
        raise BadHardwareConfig(f"a gpio button needs a pin, not {config!r}")
    return GpioButton(config.pin, pull_up=config.pull_up, bounce_s=config.bounce_ms / 1000, pin_factory=pins)


BUTTONS: dict[str, Callable[[ButtonConfig, PinFactory], PushButton]] = {
    "simulated": lambda config, pins: SimulatedButton(),
    "gpio": _gpio_button,
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

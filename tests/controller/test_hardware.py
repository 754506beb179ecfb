"""Hardware parts: simulated ones, and the gpiozero relay and lights on mock pins."""

from __future__ import annotations

import threading
import time
import tomllib
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from controller.config import EXAMPLE_CONFIG, load_config, parse_config
from controller.hardware import gpio
from controller.hardware.factory import build_parts
from controller.hardware.gpio import GpioButton, LedIndicator, RelaySwitch, pin_factory_from_name
from controller.hardware.interfaces import (
    Announcing,
    BadgeReader,
    BadHardwareConfig,
    BadPinFactory,
    CurrentSensor,
    HardwareClosed,
    HardwareError,
    Indicator,
    PinFailed,
    PushButton,
    Signal,
    Switch,
)
from controller.hardware.patterns import DENIALS, GRANTED
from controller.hardware.simulated import SimulatedBadgeReader, SimulatedButton, SimulatedCurrentSource
from protocol.messages import Reason
from protocol.refusals import RefusalFamily, family_of


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (for gpiozero's blink threads)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# Simulated parts.


def test_a_simulated_tap_is_read_once_in_upper_case() -> None:
    reader = SimulatedBadgeReader()
    reader.tap("04a1b2c3")
    reader.tap("0BADCAFE")

    assert reader.read() == "04A1B2C3"
    assert reader.read() == "0BADCAFE"
    assert reader.read() is None


def test_a_simulated_reader_refuses_a_uid_that_is_not_hex() -> None:
    reader = SimulatedBadgeReader()
    with pytest.raises(BadHardwareConfig, match="hex"):
        reader.tap("not-a-badge")
    with pytest.raises(ValueError, match="hex"):
        reader.tap("12")


def test_a_simulated_reader_announces_taps() -> None:
    reader = SimulatedBadgeReader()
    heard = threading.Event()
    assert isinstance(reader, Announcing)
    reader.set_listener(heard.set)
    reader.tap("04A1B2C3")

    assert heard.is_set()


def test_a_closed_reader_says_so() -> None:
    reader = SimulatedBadgeReader()
    reader.close()
    with pytest.raises(HardwareClosed):
        reader.read()
    with pytest.raises(RuntimeError):
        reader.tap("04A1B2C3")


def test_simulated_current_follows_set_amps() -> None:
    source = SimulatedCurrentSource()
    assert source.amps() == 0.0
    source.set_amps(2.5)
    assert source.amps() == 2.5
    with pytest.raises(BadHardwareConfig):
        source.set_amps(-1)


def test_simulated_noise_stays_within_its_amplitude_and_never_negative() -> None:
    source = SimulatedCurrentSource(0.05, noise_a=0.1, seed=3)
    readings = [source.amps() for _ in range(500)]

    assert all(0.0 <= r <= 0.15 for r in readings)
    assert len(set(readings)) > 100
    assert min(readings) == 0.0


def test_simulated_current_is_safe_to_set_from_another_thread() -> None:
    source = SimulatedCurrentSource()
    values = [float(i % 7) for i in range(2000)]

    def write_all() -> None:
        for value in values:
            source.set_amps(value)

    writer = threading.Thread(target=write_all)
    writer.start()
    readings = [source.amps() for _ in range(2000)]
    writer.join()

    assert set(readings) <= set(values) | {0.0}


def test_the_parts_meet_their_protocols(mock_factory: Any) -> None:
    reader: BadgeReader = SimulatedBadgeReader()
    current: CurrentSensor = SimulatedCurrentSource()
    switch: Switch = RelaySwitch(17, pin_factory=mock_factory)
    indicator: Indicator = LedIndicator(5, 6, pin_factory=mock_factory)
    button: PushButton = SimulatedButton()
    gpio_button: PushButton = GpioButton(26, pin_factory=mock_factory)
    for part in (reader, current, switch, indicator, button, gpio_button):
        part.close()


def test_a_simulated_button_counts_each_press_once_and_announces_it() -> None:
    button = SimulatedButton()
    heard: list[bool] = []
    assert isinstance(button, Announcing)
    button.set_listener(lambda: heard.append(True))
    button.press()
    button.press()

    assert heard == [True, True]
    assert [button.pressed(), button.pressed(), button.pressed()] == [True, True, False]
    button.close()
    with pytest.raises(HardwareClosed):
        button.pressed()
    with pytest.raises(RuntimeError):
        button.press()


# The button on a GPIO pin.


def test_a_gpio_button_is_pressed_when_its_pin_is_pulled_low(mock_factory: Any) -> None:
    button = GpioButton("GPIO26", pin_factory=mock_factory)
    pin = mock_factory.pin(26)
    heard = threading.Event()
    assert isinstance(button, Announcing)
    button.set_listener(heard.set)

    assert button.pressed() is False
    pin.drive_low()
    pin.drive_high()
    assert heard.is_set()
    assert button.pressed() is True
    assert button.pressed() is False, "each press is read once"
    button.close()
    with pytest.raises(HardwareClosed):
        button.pressed()


def test_a_gpio_button_pulled_down_is_pressed_when_its_pin_goes_high(mock_factory: Any) -> None:
    button = GpioButton(19, pull_up=False, bounce_s=0, pin_factory=mock_factory)
    mock_factory.pin(19).drive_high()

    assert button.pressed() is True
    button.close()


def test_a_button_on_a_pin_in_use_is_a_hardware_error(mock_factory: Any) -> None:
    relay = RelaySwitch(26, pin_factory=mock_factory)
    with pytest.raises(PinFailed, match="button on pin 26"):
        GpioButton(26, pin_factory=mock_factory)
    relay.close()


# The relay.


def test_a_relay_starts_off_whatever_the_pin_was(mock_factory: Any) -> None:
    pin = mock_factory.pin(17)
    pin.function = "output"
    pin.state = True  # left powered by a previous process

    relay = RelaySwitch(17, pin_factory=mock_factory)

    assert relay.is_on is False
    assert pin.state is False
    relay.on()
    assert relay.is_on is True
    assert pin.state is True
    relay.off()
    assert pin.state is False
    relay.close()


def test_an_active_low_relay_is_off_with_a_high_pin_from_the_start(mock_factory: Any) -> None:
    relay = RelaySwitch("GPIO27", active_high=False, pin_factory=mock_factory)
    pin = mock_factory.pin(27)

    assert pin.function == "output"
    assert pin.state is True
    assert relay.is_on is False
    assert all(s.state for s in pin.states[1:]), "never driven low, not even for an instant"
    relay.on()
    assert pin.state is False
    assert relay.is_on is True
    relay.close()


def test_a_relay_uses_its_own_pin_factory_not_the_global_one(mock_factory: Any) -> None:
    own = MockFactory()
    relay = RelaySwitch(17, pin_factory=own)
    relay.on()

    assert own.pin(17).state is True
    assert 17 not in [info.number for info in Device.pin_factory.pins], "the global factory is untouched"
    relay.close()


def test_a_pin_used_twice_is_a_hardware_error(mock_factory: Any) -> None:
    first = RelaySwitch(17, pin_factory=mock_factory)
    with pytest.raises(PinFailed, match="pin 17") as raised:
        RelaySwitch(17, pin_factory=mock_factory)
    assert isinstance(raised.value, OSError)
    first.close()


def test_a_closed_relay_says_so(mock_factory: Any) -> None:
    relay = RelaySwitch(17, pin_factory=mock_factory)
    relay.close()
    with pytest.raises(HardwareClosed):
        _ = relay.is_on
    with pytest.raises(HardwareError):
        relay.on()


# The lights.


@pytest.fixture
def lights(mock_factory: Any) -> Any:
    indicator = LedIndicator(5, 6, buzzer_pin=13, pin_factory=mock_factory)
    yield indicator
    indicator.close()


@pytest.mark.parametrize(
    ("signal", "green", "red"),
    [
        (Signal.LOCKED, False, True),
        (Signal.AUTHORISING, True, True),
        (Signal.GRANTED, True, False),
        (Signal.RUNNING, True, False),
    ],
)
def test_steady_signals_light_the_right_leds(
    lights: LedIndicator, signal: Signal, green: bool, red: bool
) -> None:
    lights.show(Signal.ERROR)  # start from blinking: show() must stop it
    lights.show(signal)

    assert (lights.green_is_lit, lights.red_is_lit) == (green, red)
    assert lights.signal is signal


def test_granted_beeps_once(lights: LedIndicator, mock_factory: Any) -> None:
    buzzer = mock_factory.pin(13)
    buzzer.clear_states()
    lights.show(Signal.GRANTED)

    assert wait_until(lambda: [s.state for s in buzzer.states] == [False, True, False])


@pytest.mark.parametrize(
    ("reason", "beeps", "long"),
    [
        (Reason.UNKNOWN_BADGE, 2, False),  # the badge or the member: two short
        (Reason.NOT_CERTIFIED, 1, True),  # training: one long
        (Reason.INSUFFICIENT_BALANCE, 3, False),  # balance: three short
        (Reason.MACHINE_LOCKED_OUT, 2, True),  # the machine: two long
        (Reason.SERVER_UNREACHABLE, 5, False),  # the system: five quick
        (None, 5, False),
    ],
)
def test_denied_flashes_red_and_beeps_the_family_of_the_reason(
    lights: LedIndicator, mock_factory: Any, reason: Reason | None, beeps: int, long: bool
) -> None:
    red, buzzer = mock_factory.pin(6), mock_factory.pin(13)
    red.clear_states()
    buzzer.clear_states()
    lights.show(Signal.DENIED, reason)

    assert lights.reason is reason
    assert not lights.green_is_lit
    expected = [False] + [True, False] * beeps
    assert wait_until(lambda: [s.state for s in buzzer.states] == expected)
    # Each state's timestamp is the time since the previous change: how long the beep before it lasted.
    beep_lengths = [s.timestamp for s in buzzer.states[2::2]]
    assert all((length > 0.3) is long for length in beep_lengths), beep_lengths
    assert wait_until(lambda: sum(s.state for s in red.states) >= beeps + 1), "red flashes the pattern, again"


def test_every_refusal_family_sounds_different() -> None:
    patterns = {family: (p.beeps, p.on_ticks) for family, p in DENIALS.items()}
    assert len(set(patterns.values())) == len(RefusalFamily)
    assert GRANTED.ticks() not in [p.ticks() for p in DENIALS.values()]
    assert all(family_of(reason) in RefusalFamily for reason in Reason if reason is not Reason.GRANTED)


def test_error_flashes_both(lights: LedIndicator, mock_factory: Any) -> None:
    green, red = mock_factory.pin(5), mock_factory.pin(6)
    green.clear_states()
    red.clear_states()
    lights.show(Signal.ERROR)

    assert wait_until(lambda: len(green.states) >= 3 and len(red.states) >= 3)


def test_lights_without_a_buzzer(mock_factory: Any) -> None:
    indicator = LedIndicator("GPIO20", "GPIO21", pin_factory=mock_factory)
    indicator.show(Signal.GRANTED)
    assert indicator.green_is_lit
    indicator.close()


def test_a_failed_light_releases_the_pins_it_took(mock_factory: Any) -> None:
    relay = RelaySwitch(6, pin_factory=mock_factory)
    with pytest.raises(PinFailed):
        LedIndicator(5, 6, pin_factory=mock_factory)
    again = LedIndicator(5, 7, pin_factory=mock_factory)  # pin 5 was given back
    again.close()
    relay.close()


# Pin factories and building from configuration.


def test_pin_factories_by_name() -> None:
    assert isinstance(pin_factory_from_name("mock"), MockFactory)
    with pytest.raises(BadPinFactory, match="unknown pin factory 'bogus'") as raised:
        pin_factory_from_name("bogus")
    assert isinstance(raised.value, ImportError)
    assert isinstance(raised.value, HardwareError)


def test_a_pin_factory_that_cannot_run_here_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the native or lgpio factory does off a Raspberry Pi: it fails as it loads.
    class NotAPi:
        name = "native"

        def load(self) -> Any:
            raise RuntimeError("no GPIO registers here")

    monkeypatch.setattr(gpio, "entry_points", lambda group: [NotAPi()])
    with pytest.raises(BadPinFactory, match="pin factory 'native' cannot be used here: no GPIO registers"):
        pin_factory_from_name("native")


def test_parts_are_built_from_the_example_configuration(mock_factory: Any) -> None:
    config = load_config(EXAMPLE_CONFIG, environ={})
    factory = MockFactory()
    parts = [build_parts(machine, factory) for machine in config.machines]

    sewing, printer = parts
    assert isinstance(sewing.reader, SimulatedBadgeReader)
    assert isinstance(sewing.current, SimulatedCurrentSource)
    assert isinstance(sewing.switch, RelaySwitch)
    assert isinstance(sewing.indicator, LedIndicator)
    assert isinstance(sewing.button, SimulatedButton)
    assert printer.button is None
    assert factory.pin(17).state is True, "active-low relay, off"
    for machine_parts in parts:
        machine_parts.close()
    with pytest.raises(HardwareClosed):
        sewing.button.pressed()


def test_a_gpio_button_is_built_from_its_table() -> None:
    data = tomllib.loads(EXAMPLE_CONFIG.read_text())
    data["machine"][1]["button"] = {"type": "gpio", "pin": 26, "bounce_ms": 20}
    config = parse_config(data, environ={})
    factory = MockFactory()
    parts = build_parts(config.machine("print-1"), factory)

    assert isinstance(parts.button, GpioButton)
    factory.pin(26).drive_low()
    assert parts.button.pressed()
    parts.close()

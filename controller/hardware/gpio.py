"""The relay, the lights and the button on Raspberry Pi GPIO pins, through gpiozero.

Every part takes a ``pin_factory``: on a Pi the native or lgpio factory, in
simulation and tests gpiozero's ``MockFactory``, so the same code drives a
real relay and a mock pin. Parts never use gpiozero's global
``Device.pin_factory``: two gateways in one process (tests, the demo) each
keep their own pins.
"""

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Protocol, TypeVar, cast

from gpiozero import LED, Button, Buzzer, GPIOZeroError, OutputDevice
from gpiozero.pins.mock import MockFactory

from controller.hardware.interfaces import BadPinFactory, HardwareClosed, PinFailed, Signal
from controller.hardware.patterns import GRANTED, TICK_S, Pattern, denial
from protocol.messages import Reason

log = logging.getLogger(__name__)

Pin = int | str
"""A GPIO pin as gpiozero names it: 17 (BCM), "GPIO17", "BOARD11"."""

T = TypeVar("T")


class PinFactory(Protocol):
    """A gpiozero pin factory (``MockFactory``, ``NativeFactory``, ``LGPIOFactory``...)."""

    def close(self) -> None: ...


def pin_factory_from_name(name: str) -> PinFactory:
    """The gpiozero pin factory called ``name``: "mock", "native", "lgpio", "rpigpio"...

    Names are gpiozero's own (its ``gpiozero_pin_factories`` entry points), so
    a factory gpiozero learns about is usable here without a change.
    """
    if name == "mock":
        return cast(PinFactory, MockFactory())
    for entry in entry_points(group="gpiozero_pin_factories"):
        if entry.name == name.lower():
            try:
                return cast(PinFactory, entry.load()())
            except Exception as error:
                # Off a Pi, or without the pin library installed, the factory fails to load.
                raise BadPinFactory(f"pin factory {name!r} cannot be used here: {error}") from error
    known = sorted(entry.name for entry in entry_points(group="gpiozero_pin_factories"))
    raise BadPinFactory(f"unknown pin factory {name!r}: use one of {', '.join(known)}")


@contextlib.contextmanager
def _pin_errors(what: str) -> Iterator[None]:
    try:
        yield
    except GPIOZeroError as error:
        raise PinFailed(f"{what}: {error}") from error


def _device(what: str, make: Callable[[], T]) -> T:
    with _pin_errors(what):
        return make()


class RelaySwitch:
    """A relay on one GPIO pin. It starts off, whatever the pin was before.

    Relay boards for the Pi are often active-low (the relay closes when the pin
    is pulled low): say ``active_high=False`` for those, and the off state is
    then a high pin from the first instant.
    """

    def __init__(self, pin: Pin, *, active_high: bool = True, pin_factory: PinFactory | None = None) -> None:
        self.pin = pin
        self._device: Any = _device(
            f"relay on pin {pin}",
            lambda: OutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory),
        )

    def on(self) -> None:
        with _pin_errors(f"relay on pin {self.pin}"):
            self._device.on()

    def off(self) -> None:
        with _pin_errors(f"relay on pin {self.pin}"):
            self._device.off()

    @property
    def is_on(self) -> bool:
        try:
            return bool(self._device.is_active)
        except GPIOZeroError as error:
            raise HardwareClosed(f"relay on pin {self.pin} is closed") from error

    def close(self) -> None:
        self._device.close()


class LedIndicator:
    """A green and a red LED, and an optional buzzer, at the machine.

    locked: red. authorising: red and green. granted: green and one short beep.
    running: green. error: both flashing. denied: red flashing, and beeping, in the
    rhythm of the refusal's family (:mod:`controller.hardware.patterns`): two short
    (the badge or the member), one long (training), three short (balance), two long
    (the machine), five quick (the system: ask the staff). The reason itself is
    logged for the manager.
    """

    def __init__(
        self,
        green_pin: Pin,
        red_pin: Pin,
        *,
        buzzer_pin: Pin | None = None,
        pin_factory: PinFactory | None = None,
    ) -> None:
        self._green: Any = _device(
            f"green LED on pin {green_pin}", lambda: LED(green_pin, pin_factory=pin_factory)
        )
        try:
            self._red: Any = _device(
                f"red LED on pin {red_pin}", lambda: LED(red_pin, pin_factory=pin_factory)
            )
            self._buzzer: Any = (
                None
                if buzzer_pin is None
                else _device(
                    f"buzzer on pin {buzzer_pin}", lambda: Buzzer(buzzer_pin, pin_factory=pin_factory)
                )
            )
        except PinFailed:
            self.close()
            raise
        self.signal: Signal | None = None
        self.reason: Reason | None = None

    def show(self, signal: Signal, reason: Reason | None = None) -> None:
        with _pin_errors("indicator"):
            # A pattern left over from the previous signal is stopped first; off() stops blinking.
            self._red.source = None
            self._green.off()
            self._red.off()
            if self._buzzer is not None:
                self._buzzer.off()
            if signal is Signal.LOCKED:
                self._red.on()
            elif signal is Signal.AUTHORISING:
                self._red.on()
                self._green.on()
            elif signal is Signal.GRANTED:
                self._green.on()
                self._beep(GRANTED)
            elif signal is Signal.RUNNING:
                self._green.on()
            elif signal is Signal.DENIED:
                pattern = denial(reason)
                self._red.source_delay = TICK_S
                self._red.source = pattern.flashing()
                self._beep(pattern)
            else:
                self._red.blink(on_time=0.5, off_time=0.5, background=True)
                self._green.blink(on_time=0.5, off_time=0.5, background=True)
        self.signal, self.reason = signal, reason

    def _beep(self, pattern: Pattern) -> None:
        if self._buzzer is not None:
            self._buzzer.beep(on_time=pattern.on_s, off_time=pattern.off_s, n=pattern.beeps, background=True)

    @property
    def green_is_lit(self) -> bool:
        return bool(self._green.is_lit)

    @property
    def red_is_lit(self) -> bool:
        return bool(self._red.is_lit)

    def close(self) -> None:
        red = getattr(self, "_red", None)
        if red is not None:
            with contextlib.suppress(GPIOZeroError):
                red.source = None
        for device in (getattr(self, "_buzzer", None), red, self._green):
            if device is not None:
                try:
                    device.close()
                except GPIOZeroError:
                    log.exception("closing an indicator part failed")


class GpioButton:
    """A push button between a GPIO pin and ground (the pin's pull-up holds it high).

    gpiozero calls back on each press from its own thread (a real pin) or the
    caller's (a mock pin): the press is counted here and the listener told, and
    the gateway's worker reads it with :meth:`pressed`.
    """

    def __init__(
        self,
        pin: Pin,
        *,
        pull_up: bool = True,
        bounce_s: float | None = 0.05,
        pin_factory: PinFactory | None = None,
    ) -> None:
        self.pin = pin
        self._lock = threading.Lock()
        self._presses = 0
        self._listener: Callable[[], None] | None = None
        self._device: Any = _device(
            f"button on pin {pin}",
            lambda: Button(pin, pull_up=pull_up, bounce_time=bounce_s or None, pin_factory=pin_factory),
        )
        self._device.when_pressed = self._on_press

    def _on_press(self) -> None:
        with self._lock:
            self._presses += 1
            listener = self._listener
        if listener is not None:
            listener()

    def pressed(self) -> bool:
        with self._lock:
            if self._device.closed:
                raise HardwareClosed(f"button on pin {self.pin} is closed")
            if not self._presses:
                return False
            self._presses -= 1
            return True

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        with self._lock:
            self._listener = listener

    def close(self) -> None:
        with self._lock:
            self._listener = None
        self._device.close()

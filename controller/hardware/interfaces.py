"""What the gateway needs from the hardware at a machine, and nothing more.

Each part is a small :class:`typing.Protocol`, so a real driver (gpiozero,
pyserial), a simulated part and the firmware bridge's proxy can stand in for
one another without sharing a base class. Errors follow gpiozero: one root,
:class:`HardwareError`, and each error also inherits the builtin it resembles,
so a caller may catch either.
"""

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol, runtime_checkable

from protocol.messages import Reason


class HardwareError(Exception):
    """Root of every error raised by :mod:`controller.hardware`."""


class HardwareClosed(HardwareError, RuntimeError):
    """A part was used after :meth:`close`."""


class BadHardwareConfig(HardwareError, ValueError):
    """A part cannot be built from the configuration it was given."""


class BadPinFactory(HardwareError, ImportError):
    """A gpiozero pin factory that does not exist or cannot load here."""


class PinFailed(HardwareError, OSError):
    """A GPIO pin could not be reserved or driven."""


class PartFailed(HardwareError, OSError):
    """A part stopped answering: its serial port vanished, its ADC read failed, its plug went silent.

    The driver keeps trying to recover by itself; meanwhile the gateway shows an error at
    the machine and never powers it on.
    """


class NotSimulated(HardwareError, TypeError):
    """A simulation-only operation (tap, set_amps) on a real part."""


class Signal(StrEnum):
    """What a machine's lights (and buzzer) tell the member standing at it."""

    LOCKED = "locked"  # nobody is using it: tap a badge
    AUTHORISING = "authorising"  # a badge was read, waiting for the decision
    GRANTED = "granted"  # powered for your session, not running
    DENIED = "denied"  # refused: the reason goes with it
    RUNNING = "running"  # powered and drawing current
    ERROR = "error"  # the gateway cannot drive this machine properly


class BadgeReader(Protocol):
    def read(self) -> str | None:
        """The UID of a badge tapped since the last call (upper-case hex), or None.

        Never blocks; each tap is returned once.
        """
        ...

    def close(self) -> None: ...


class CurrentSensor(Protocol):
    def amps(self) -> float:
        """The RMS current drawn by the machine now, in amperes."""
        ...

    def close(self) -> None: ...


class Switch(Protocol):
    """The relay (or contactor) that powers the machine."""

    def on(self) -> None: ...

    def off(self) -> None: ...

    @property
    def is_on(self) -> bool: ...

    def close(self) -> None:
        """Release the output without changing it: the caller decides on and off."""
        ...


class PushButton(Protocol):
    """A push button at the machine (optional): it confirms a trainer's certification there."""

    def pressed(self) -> bool:
        """Whether the button was pressed since the last call. Never blocks; each press counts once."""
        ...

    def close(self) -> None: ...


class Indicator(Protocol):
    def show(self, signal: Signal, reason: Reason | None = None) -> None:
        """Show ``signal``; ``reason`` says why a badge was denied, for displays that can."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Announcing(Protocol):
    """A part that can say when it has something to read (optional).

    A reader that knows when a badge arrives (a serial thread, a simulation),
    or a button that knows when it is pressed (a GPIO edge), calls the
    listener, so the gateway reads it at once instead of at its next poll: the
    tap-to-decision time then does not include the poll interval.
    """

    def set_listener(self, listener: Callable[[], None] | None) -> None: ...

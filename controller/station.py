"""A machine as the gateway drives it: its interlock and the parts fitted to it."""

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from controller.actions import CertifyOutcome
from controller.config import MachineSection
from controller.hardware.factory import MachineParts
from controller.hardware.interfaces import (
    BadgeReader,
    CurrentSensor,
    Indicator,
    NotSimulated,
    PushButton,
    Signal,
    Switch,
)
from controller.hardware.simulated import SimulatedBadgeReader, SimulatedButton, SimulatedCurrentSource
from controller.machine import Machine, MachineRules
from controller.metering import Calibration, Supply
from controller.supervision import Trainee, Trainer
from protocol.messages import MachineStateName, Reason

log = logging.getLogger(__name__)

_BADGE_UID = re.compile(r"^[0-9A-F]{4,32}$")
TAPS_PER_SAMPLE = 8
"""At most this many queued taps (or presses) are read from one part at a time."""


def rules_for(machine: MachineSection, request_timeout_ms: int) -> MachineRules:
    """The interlock rules of a configured machine."""
    current = machine.current
    return MachineRules(
        idle_timeout_s=machine.idle_timeout_s,
        running_above_a=current.running_above_a,
        idle_below_a=current.idle_below_a,
        running_after_s=current.running_after_s,
        idle_after_s=current.idle_after_s,
        request_timeout_s=request_timeout_ms / 1000,
        supervision_window_s=machine.supervision_window_s,
        certify_level=machine.certify_level,
        calibration=Calibration(scale=current.scale, offset_a=current.offset_a),
        supply=None if current.voltage_v is None else Supply(current.voltage_v, current.power_factor),
        hard_limit_s=machine.hard_limit_s,
    )


@dataclass(eq=False)
class MachineStation:
    """One machine of a gateway. Its interlock and parts belong to the gateway's worker:
    read them from elsewhere, but drive a simulation only through :meth:`tap`,
    :meth:`press` and :meth:`set_amps` (which are thread-safe).
    """

    config: MachineSection
    machine: Machine
    parts: MachineParts
    faulty: bool = False
    shown: tuple[Signal, Reason | None] = (Signal.LOCKED, None)
    """What the indicator last showed, and why: the reason of a refusal, or ``granted``
    after a certification at the machine."""

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def state(self) -> MachineStateName:
        return self.machine.state

    @property
    def session_id(self) -> str | None:
        return self.machine.session_id

    @property
    def supervisor_id(self) -> int | None:
        """The trainer supervising the open session, if it was granted under supervision."""
        return self.machine.supervisor_id

    @property
    def trainer(self) -> Trainer | None:
        """The trainer present: granted here with ``trainer: true`` within the supervision window."""
        return self.machine.supervision.trainer(self.machine.seen_until)

    @property
    def trainee(self) -> Trainee | None:
        """The member that the trainer's next tap, or the button, would certify."""
        return self.machine.supervision.trainee(self.machine.seen_until)

    @property
    def certifying(self) -> bool:
        """A certification at this machine waits for the server's answer."""
        return self.machine.certifying

    @property
    def last_certification(self) -> CertifyOutcome | None:
        """How the latest certification at this machine ended (certified, or refused and why)."""
        return self.machine.supervision.last_outcome

    @property
    def reader(self) -> BadgeReader:
        """The badge reader: a :class:`SimulatedBadgeReader` in simulation."""
        return self.parts.reader

    @property
    def current(self) -> CurrentSensor:
        """The current sensor: a :class:`SimulatedCurrentSource` in simulation."""
        return self.parts.current

    @property
    def switch(self) -> Switch:
        return self.parts.switch

    @property
    def indicator(self) -> Indicator:
        return self.parts.indicator

    @property
    def button(self) -> PushButton | None:
        """The certification button, if the machine has one."""
        return self.parts.button

    @property
    def is_on(self) -> bool:
        """Whether the relay powers the machine now."""
        return self.parts.switch.is_on

    @property
    def amps(self) -> float:
        """The last current sample the interlock saw."""
        return self.machine.amps

    def taps(self) -> Iterator[str]:
        """The badges tapped since the last read, upper-cased; an unreadable UID is logged and skipped."""
        for _ in range(TAPS_PER_SAMPLE):
            uid = self.parts.reader.read()
            if uid is None:
                return
            uid = uid.strip().upper()
            if not _BADGE_UID.match(uid):
                log.warning("machine %s: ignored an unreadable badge UID %r", self.id, uid)
                continue
            yield uid

    def presses(self) -> Iterator[None]:
        """One item per press of the button since the last read (none without a button)."""
        button = self.parts.button
        for _ in range(TAPS_PER_SAMPLE):
            if button is None or not button.pressed():
                return
            log.info("machine %s: button pressed", self.id)
            yield None

    def show(self, signal: Signal, reason: Reason | None = None) -> None:
        """Show ``signal`` on the indicator, and remember it (see :attr:`shown`)."""
        self.parts.indicator.show(signal, reason)
        self.shown = (signal, reason)

    def tap(self, uid: str) -> None:
        """Tap badge ``uid`` on a simulated reader."""
        if not isinstance(self.parts.reader, SimulatedBadgeReader):
            raise NotSimulated(f"machine {self.id} has a real badge reader: tap a real badge")
        self.parts.reader.tap(uid)

    def press(self) -> None:
        """Press a simulated certification button."""
        if not isinstance(self.parts.button, SimulatedButton):
            raise NotSimulated(f"machine {self.id} has no simulated button")
        self.parts.button.press()

    def set_amps(self, amps: float) -> None:
        """Make a simulated machine draw ``amps``."""
        if not isinstance(self.parts.current, SimulatedCurrentSource):
            raise NotSimulated(f"machine {self.id} has a real current sensor")
        self.parts.current.set_amps(amps)

"""A machine as the gateway drives it: its interlock and the parts fitted to it."""

from dataclasses import dataclass

from controller.config import MachineSection
from controller.hardware.factory import MachineParts
from controller.hardware.interfaces import BadgeReader, CurrentSensor, Indicator, NotSimulated, Switch
from controller.hardware.simulated import SimulatedBadgeReader, SimulatedCurrentSource
from controller.machine import Machine, MachineRules
from protocol.messages import MachineStateName


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
    )


@dataclass(eq=False)
class MachineStation:
    """One machine of a gateway. Its interlock and parts belong to the gateway's worker:
    read them from elsewhere, but drive a simulation only through :meth:`tap` and
    :meth:`set_amps` (which are thread-safe).
    """

    config: MachineSection
    machine: Machine
    parts: MachineParts
    faulty: bool = False

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
    def is_on(self) -> bool:
        """Whether the relay powers the machine now."""
        return self.parts.switch.is_on

    @property
    def amps(self) -> float:
        """The last current sample the interlock saw."""
        return self.machine.amps

    def tap(self, uid: str) -> None:
        """Tap badge ``uid`` on a simulated reader."""
        if not isinstance(self.parts.reader, SimulatedBadgeReader):
            raise NotSimulated(f"machine {self.id} has a real badge reader: tap a real badge")
        self.parts.reader.tap(uid)

    def set_amps(self, amps: float) -> None:
        """Make a simulated machine draw ``amps``."""
        if not isinstance(self.parts.current, SimulatedCurrentSource):
            raise NotSimulated(f"machine {self.id} has a real current sensor")
        self.parts.current.set_amps(amps)

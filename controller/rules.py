"""The rules of one machine's interlock: thresholds, delays and windows, from its configuration."""

from dataclasses import dataclass, field

from controller.metering import Calibration, Supply
from protocol.messages import CertificationLevel


@dataclass(frozen=True, slots=True)
class MachineRules:
    """Thresholds and delays of one machine, in amperes and seconds."""

    idle_timeout_s: float
    running_above_a: float
    idle_below_a: float
    running_after_s: float
    idle_after_s: float
    request_timeout_s: float = 0.5
    denied_display_s: float = 3.0
    """How long a refusal (or a certification's success) is shown before the lights go back."""
    supervision_window_s: float = 300.0
    """How long after a trainer's grant a badge tapped here is asked about as supervised; 0: never."""
    certify_level: CertificationLevel = CertificationLevel.AUTONOMOUS
    """The level a trainer's certification at this machine asks for."""
    calibration: Calibration = field(default_factory=Calibration)
    """Applied to every raw current reading before the thresholds."""
    supply: Supply | None = None
    """The machine's voltage and power factor, when known: sessions then meter energy."""
    hard_limit_s: float | None = None
    """The longest a lock, timeout or lockout waits for the machine to be idle; None: no limit."""

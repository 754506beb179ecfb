"""How a machine's red LED and buzzer say "granted" and why a badge was refused.

One pattern per refusal family (:mod:`protocol.refusals`), told apart by the number
and the length of the beeps, and flashed by the red LED in the same rhythm (then a
pause, over and over) for those who cannot hear it in a noisy workshop. The
microcontroller behind the firmware bridge plays the same patterns
(docs/firmware-protocol.md).
"""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from protocol.messages import Reason
from protocol.refusals import RefusalFamily, family_of

TICK_S = 0.05
"""The patterns' time step."""
PAUSE_TICKS = 20
"""Between two repeats of a refusal's flashes: one second of darkness."""


@dataclass(frozen=True, slots=True)
class Pattern:
    beeps: int
    on_ticks: int
    off_ticks: int

    @property
    def on_s(self) -> float:
        return self.on_ticks * TICK_S

    @property
    def off_s(self) -> float:
        return self.off_ticks * TICK_S

    def ticks(self) -> list[int]:
        """One playing of the pattern, one value (1 lit, 0 dark) per tick."""
        return ([1] * self.on_ticks + [0] * self.off_ticks) * self.beeps

    def flashing(self) -> Iterator[int]:
        """The pattern then a pause, forever: what the red LED shows while a refusal is shown."""
        return itertools.cycle(self.ticks() + [0] * PAUSE_TICKS)


GRANTED = Pattern(beeps=1, on_ticks=2, off_ticks=2)
DENIALS: dict[RefusalFamily, Pattern] = {
    RefusalFamily.BADGE: Pattern(beeps=2, on_ticks=2, off_ticks=2),
    RefusalFamily.TRAINING: Pattern(beeps=1, on_ticks=14, off_ticks=2),
    RefusalFamily.BALANCE: Pattern(beeps=3, on_ticks=2, off_ticks=2),
    RefusalFamily.MACHINE: Pattern(beeps=2, on_ticks=8, off_ticks=4),
    RefusalFamily.SYSTEM: Pattern(beeps=5, on_ticks=1, off_ticks=1),
}


def denial(reason: Reason | None) -> Pattern:
    """The pattern of a refusal for ``reason``."""
    return DENIALS[family_of(reason)]

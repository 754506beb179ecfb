"""What each machine is doing right now, as its gateway last said: kept in memory only.

Gateways publish each machine's state (locked, authorising, unlocked, running, with the
session and member) retained on ``.../machine/<machine>``. The MQTT handlers feed them
here from the ingest lane (:meth:`LiveWorkshop.machine_state`), never from the decision
lane, and bump :attr:`LiveWorkshop.version` on each gateway status too, so that the web
interface's live view (:mod:`server.web`) knows when to look again. Nothing here is
billed or decided on: usage sessions in the database stay the record, and a server that
restarts learns every state again from the retained messages.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from protocol.messages import MachineState, MachineStateName
from server.clock import from_ms


@dataclass(frozen=True, slots=True)
class LiveMachine:
    """A machine's last state, as its gateway published it."""

    gateway: str
    machine: str
    state: MachineStateName
    session_id: str | None
    member_id: int | None
    at: datetime
    """When the gateway says the state began (its own clock)."""
    received_at: datetime


class LiveWorkshop:
    """Thread-safe: written by the ingest lane's thread, read by the web's requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._machines: dict[str, LiveMachine] = {}
        self._version = 0

    @property
    def version(self) -> int:
        """Moves on at every change: a reader that saw this number has seen everything before it."""
        return self._version

    def touch(self) -> None:
        """Something a reader shows changed elsewhere (a gateway's status, a lockout)."""
        with self._lock:
            self._version += 1

    def machine_state(self, gateway: str, state: MachineState, received_at: datetime) -> bool:
        """Keep ``state``; False when an older one arrived late (a retained copy) and was ignored."""
        at = from_ms(state.at_ms)
        with self._lock:
            known = self._machines.get(state.machine)
            if known is not None and known.gateway == gateway and known.at > at:
                return False
            self._machines[state.machine] = LiveMachine(
                gateway, state.machine, state.state, state.session_id, state.member_id, at, received_at
            )
            self._version += 1
        return True

    def machines(self) -> dict[str, LiveMachine]:
        """Every machine heard of, by its id."""
        with self._lock:
            return dict(self._machines)

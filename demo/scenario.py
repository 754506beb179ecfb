"""A round of life in the demo workshop: who taps which machine, and when.

Each step is a moment (seconds from the start of the round) and an action on
the simulated hardware (a badge tap, the current a machine draws), on the
server's API (a manager's lockout), or on the server itself (its MQTT link cut
and restored, to show the gateways deciding offline). Every rule of access
shows up once.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from controller.gateway import Gateway
from controller.hardware.interfaces import Signal
from demo.workshop import UNKNOWN_BADGE, badge_of, machine

Say = Callable[[str], None]


class ServerSwitch(Protocol):
    """Cuts the server's MQTT link and restores it (the demo's outage)."""

    def down(self) -> None: ...

    def up(self) -> None: ...


@dataclass(frozen=True)
class Step:
    at_s: float
    kind: str  # "tap", "amps", "lockout", "unlock", "server_down", "server_up"
    machine: str
    who: str = ""
    amps: float = 0.0
    note: str = ""
    opens_session: bool = False  # a tap that is granted and opens a usage session
    tell_outcome: bool = False  # say what the machine showed (a refusal nobody else sees on MQTT)


def _work(machine_id: str, start: float, stop: float) -> list[Step]:
    working = machine(machine_id).working_a
    return [Step(start, "amps", machine_id, amps=working), Step(stop, "amps", machine_id, amps=0.0)]


def _open(at_s: float, machine_id: str, who: str, note: str = "") -> Step:
    return Step(at_s, "tap", machine_id, who, note=note, opens_session=True)


ROUND: tuple[Step, ...] = tuple(
    sorted(
        [
            _open(0.0, "sew-1", "Amina"),
            *_work("sew-1", 1.0, 8.0),
            Step(1.5, "tap", "overlock-1", "Chloé", note="Chloé joined last week and is not trained yet"),
            _open(2.5, "printer-1", "Hugo"),
            *_work("printer-1", 3.0, 19.0),
            _open(3.5, "embroidery-1", "Lucas"),
            *_work("embroidery-1", 4.5, 11.0),
            Step(5.5, "tap", "sew-2", UNKNOWN_BADGE, note="a badge nobody enrolled"),
            Step(6.5, "tap", "sew-2", "Karim", note="Karim's membership is suspended"),
            Step(
                7.5,
                "tap",
                "embroidery-1",
                "Sofia",
                note="Sofia taps while Lucas embroiders: refused at the gateway",
            ),
            Step(9.0, "lockout", "sew-2", note="needle plate cracked, waiting for the technician"),
            Step(10.0, "tap", "sew-2", "Léa"),
            *_work("sew-1", 10.5, 13.0),
            Step(14.0, "tap", "sew-1", "Amina", note="Amina badges out"),
            Step(15.0, "unlock", "sew-2", note="the technician fixed it"),
            _open(16.0, "sew-2", "Léa"),
            *_work("sew-2", 17.0, 21.0),
            Step(19.5, "tap", "embroidery-1", "Sofia", note="Sofia's embroidery certification expired"),
            _open(20.0, "overlock-1", "Amina"),
            *_work("overlock-1", 21.0, 25.0),
            Step(22.0, "tap", "sew-2", "Léa", note="Léa badges out"),
            Step(26.5, "tap", "overlock-1", "Amina", note="Amina badges out"),
            # A beginner certified "supervised" sews only beside a trainer.
            Step(
                37.0,
                "tap",
                "sew-1",
                "Inès",
                note="Inès is a beginner: she may sew only with a trainer beside her",
            ),
            _open(38.0, "sew-1", "Maëlle", note="Maëlle, a sewing trainer, badges in beside her"),
            _open(
                39.0,
                "sew-1",
                "Inès",
                note="Inès taps within the supervision window: Maëlle hands the machine over",
            ),
            *_work("sew-1", 40.0, 44.0),
            Step(45.5, "tap", "sew-1", "Inès", note="Inès badges out"),
            # The server goes quiet: the gateways decide alone, from the allowlist it signed.
            Step(47.0, "server_down", "sew-2", note="the server's network link is cut"),
            _open(48.0, "sew-2", "Léa", note="Léa taps; the server does not answer"),
            *_work("sew-2", 49.0, 52.0),
            Step(
                49.5,
                "tap",
                "printer-1",
                "Hugo",
                note="Hugo taps the 3D printer: offline, only managers may start a print",
                tell_outcome=True,
            ),
            _open(51.0, "printer-1", "Nadia", note="Nadia, a manager, starts his print for him"),
            *_work("printer-1", 51.5, 54.0),
            Step(54.0, "tap", "sew-2", "Léa", note="Léa badges out, still offline"),
            Step(55.5, "tap", "printer-1", "Nadia", note="Nadia badges out"),
            Step(57.0, "server_up", "sew-2", note="the link is back"),
        ],
        key=lambda step: step.at_s,
    )
)

CERTIFICATION: tuple[Step, ...] = (
    # Chloé is trained today: Maëlle certifies her at the machine.
    _open(28.0, "sew-2", "Maëlle", note="Maëlle trains Chloé on the second sewing machine"),
    Step(
        29.0, "tap", "sew-2", "Chloé", note="Chloé taps: not certified yet, so she becomes Maëlle's trainee"
    ),
    Step(
        30.0, "tap", "sew-2", "Maëlle", note="Maëlle taps again to confirm: Chloé is certified at the machine"
    ),
    _open(31.0, "sew-2", "Chloé", note="Chloé taps: the machine is handed over to her"),
    *_work("sew-2", 32.0, 35.0),
    Step(36.0, "tap", "sew-2", "Chloé", note="Chloé badges out"),
)


def round_steps(round_number: int) -> tuple[Step, ...]:
    """The first round includes Chloé's certification; later rounds find her certified already."""
    steps = ROUND + CERTIFICATION if round_number == 1 else ROUND
    return tuple(sorted(steps, key=lambda step: step.at_s))


def sessions_in(steps: tuple[Step, ...]) -> int:
    return sum(step.opens_session for step in steps)


class Scenario:
    def __init__(
        self,
        gateways: dict[str, Gateway],
        api_url: str,
        say: Say,
        server: ServerSwitch | None = None,
        token: str | None = None,
    ) -> None:
        """``token``: an API token of a manager (scope ``manage``), for the lockouts."""
        self._stations = {mid: g.machines[mid] for g in gateways.values() for mid in g.machines}
        self._api_url = api_url
        self._token = token
        self._say = say
        self._server = server

    def play(self, stop: threading.Event, steps: tuple[Step, ...] = ROUND) -> bool:
        """Play the steps in time; False when stopped before the end."""
        started = time.monotonic()
        for step in steps:
            if stop.wait(max(0.0, started + step.at_s - time.monotonic())):
                return False
            self._do(step)
        return True

    def _do(self, step: Step) -> None:
        if step.note:
            self._say(f"{step.machine:<13} ({step.note})")
        station = self._stations[step.machine]
        if step.kind == "tap":
            station.tap(step.who if step.who == UNKNOWN_BADGE else badge_of(step.who))
            if step.tell_outcome:
                self._tell_outcome(step)
        elif step.kind in ("server_down", "server_up"):
            self._switch_server(step.kind == "server_up")
        elif step.kind == "amps":
            station.set_amps(step.amps)
        elif step.kind in ("lockout", "unlock"):
            locked = step.kind == "lockout"
            self._patch(
                f"/api/v1/machines/{step.machine}/lockout", {"locked_out": locked, "reason": step.note}
            )
            self._say(
                f"{step.machine:<13} manager {'locks the machine out' if locked else 'lifts the lockout'}"
            )

    def _switch_server(self, up: bool) -> None:
        if self._server is None:
            return
        if up:
            self._server.up()
            self._say("server        back online: it asks each gateway to publish again what it missed")
        else:
            self._server.down()
            self._say("server        OFFLINE: gateways now decide alone, from the allowlist it signed")

    def _tell_outcome(self, step: Step) -> None:
        station = self._stations[step.machine]
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and station.shown[0] is not Signal.DENIED:
            time.sleep(0.05)
        signal, reason = station.shown
        if signal is Signal.DENIED:
            why = reason.value if reason is not None else "refused"
            self._say(f"{step.machine:<13} {step.who}: REFUSED at the gateway ({why}), the machine stays off")

    def _patch(self, path: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own loopback API
            self._api_url + path,
            data=json.dumps(body).encode(),
            method="PATCH",
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self._token}"} if self._token else {}),
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own loopback API
            response.read()

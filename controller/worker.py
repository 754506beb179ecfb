"""The gateway's worker: what it does with each machine, each handed-over item and each action.

The gateway's worker thread (:class:`controller.gateway.Gateway`) calls in here, and
nothing else does while it runs: sampling a machine's parts, acting on what the link
handed over (a reply, a certification's answer, an ack, a command, an allowlist), and
carrying out what each interlock said on its relay, its lights, the outbox and the link.
A part that fails is logged and shown as an error; it never stops the worker.
"""

import contextlib
import logging
from collections.abc import Iterator

from controller import inbox
from controller.actions import (
    Action,
    Emit,
    PublishState,
    SendCertify,
    SendRequest,
    SessionEvent,
    Show,
    SwitchOff,
    SwitchOn,
)
from controller.clock import Clock
from controller.hardware.interfaces import Signal
from controller.journal import Journal
from controller.link import Link
from controller.offline import AllowlistKeeper, ServerWatch
from controller.outbox import Outbox
from controller.station import MachineStation
from protocol.errors import ProtocolError
from protocol.messages import (
    AccessReply,
    CertifyReply,
    Command,
    CommandAction,
    MachineStateName,
    Telemetry,
)

log = logging.getLogger(__name__)


class Worker:
    """Drives the gateway's ``machines``; used by the gateway's worker thread only."""

    def __init__(
        self,
        machines: dict[str, MachineStation],
        *,
        clock: Clock,
        link: Link,
        journal: Journal,
        outbox: Outbox,
        allowlists: AllowlistKeeper,
        server_watch: ServerWatch,
        request_timeout_ms: int,
    ) -> None:
        self.machines = machines
        self.clock = clock
        self.link = link
        self.journal = journal
        self.outbox = outbox
        self.allowlists = allowlists
        self.server_watch = server_watch
        self.request_timeout_ms = request_timeout_ms

    @contextlib.contextmanager
    def guard(self, station: MachineStation, doing: str) -> Iterator[None]:
        """Nothing a part does may stop the worker: log it, show an error, go on."""
        try:
            yield
        except Exception:
            self._fault(station, doing)
        else:
            if station.faulty:
                log.info("machine %s works again", station.id)
                station.faulty = False
                with contextlib.suppress(Exception):
                    station.show(station.machine.signal)

    def _fault(self, station: MachineStation, doing: str) -> None:
        # Logged once per episode: a dead sensor polled ten times a second must not flood the log.
        if not station.faulty:
            log.exception("machine %s: %s failed", station.id, doing)
        station.faulty = True
        with contextlib.suppress(Exception):
            station.show(Signal.ERROR)

    # Inputs: the parts, sampled or announcing themselves, and what the link handed over.

    def sample(self, station: MachineStation) -> None:
        with self.guard(station, "reading its badge reader, button and current sensor"):
            self._read_badges(station)
            self._read_button(station)
            amps = station.parts.current.amps()
            self.carry_out(
                station, station.machine.current(amps, self.clock.monotonic(), self.clock.wall_ms())
            )

    def _read_badges(self, station: MachineStation) -> None:
        for uid in station.taps():
            self.server_watch.check(self.clock.monotonic())
            station.machine.server_reachable = self.link.connected and self.server_watch.answering
            self.carry_out(station, station.machine.badge(uid, self.clock.monotonic(), self.clock.wall_ms()))

    def _read_button(self, station: MachineStation) -> None:
        for _ in station.presses():
            self.carry_out(station, station.machine.button(self.clock.monotonic(), self.clock.wall_ms()))

    def handle(self, item: inbox.Item) -> None:
        if isinstance(item, inbox.Tapped):
            station = self.machines[item.machine]
            with self.guard(station, "reading its badge reader"):
                self._read_badges(station)
        elif isinstance(item, inbox.Pressed):
            station = self.machines[item.machine]
            with self.guard(station, "reading its button"):
                self._read_button(station)
        elif isinstance(item, inbox.Reply | inbox.CertifyAnswer):
            self.server_watch.heard(item.reply.request_id)
            self._answer(item.reply)
        elif isinstance(item, inbox.Ack):
            self.server_watch.heard()
            self.outbox.acknowledged(item.ack)
        elif isinstance(item, inbox.CommandArrived):
            self._obey(item.command)
        elif isinstance(item, inbox.Connected):
            self.outbox.connected()
            self.replay()
        elif isinstance(item, inbox.AllowlistArrived):
            self._take_allowlist(item.payload)

    def _take_allowlist(self, payload: bytes) -> None:
        try:
            snapshot = self.allowlists.offer(payload, self.clock.wall_ms())
        except (ProtocolError, ValueError, OSError) as error:
            log.warning("refused an allowlist: %s", error)
        else:
            log.info("allowlist version %d: %d badges", snapshot.version, len(snapshot.entries))

    def _answer(self, reply: AccessReply | CertifyReply) -> None:
        """The server's answer to a request (access or certification): for its machine's interlock."""
        station = self.machines.get(reply.machine)
        if station is None:
            log.warning("dropped a %s for unknown machine %r", type(reply).__name__, reply.machine)
            return
        with self.guard(station, f"acting on a {type(reply).__name__}"):
            now, wall = self.clock.monotonic(), self.clock.wall_ms()
            if isinstance(reply, AccessReply):
                self.carry_out(station, station.machine.reply(reply, now, wall))
            else:
                self.carry_out(station, station.machine.certify_reply(reply, now, wall))

    def replay(self) -> None:
        """On (re)connection: the journal's unacknowledged events in order, then the machine states."""
        if not self.outbox.replay():
            return  # the link dropped again; the next connection replays
        wall = self.clock.wall_ms()
        for station in self.machines.values():
            self.link.publish_state(station.machine.snapshot(wall))
        self.outbox.live = True

    def _obey(self, command: Command) -> None:
        log.info("command %s: %s %s", command.command_id, command.action.value, command.machine or "(all)")
        if command.action is CommandAction.REFRESH:
            self.outbox.report()
            self.replay()
            return
        if command.machine is None:
            if command.action is CommandAction.UNLOCK:
                log.warning("dropped command %s: unlock needs a machine", command.command_id)
                return
            targets = list(self.machines.values())
        elif command.machine in self.machines:
            targets = [self.machines[command.machine]]
        else:
            log.warning("dropped command %s for unknown machine %r", command.command_id, command.machine)
            return
        for station in targets:
            with self.guard(station, f"carrying out {command.action.value}"):
                now, wall = self.clock.monotonic(), self.clock.wall_ms()
                if command.action is CommandAction.LOCK:
                    self.carry_out(station, station.machine.lock_command(now, wall))
                else:
                    self.carry_out(station, station.machine.unlock_command(now, wall))

    # Outputs: what the interlocks said, carried out.

    def carry_out(self, station: MachineStation, actions: list[Action]) -> None:
        """Do what the interlock said, in order; one failing action does not skip the others."""
        relay_failed = False
        for action in actions:
            try:
                self._do(station, action)
            except Exception:
                self._fault(station, f"{type(action).__name__}")
                relay_failed = relay_failed or isinstance(action, SwitchOn)
        if relay_failed:
            # A session the relay could not power must not be billed: end it at once.
            for action in station.machine.lock_command(self.clock.monotonic(), self.clock.wall_ms()):
                with contextlib.suppress(Exception):
                    self._do(station, action)
            self._fault(station, "switching on")

    def _do(self, station: MachineStation, action: Action) -> None:
        if isinstance(action, SwitchOn):
            station.parts.switch.on()
        elif isinstance(action, SwitchOff):
            station.parts.switch.off()
        elif isinstance(action, Show):
            if action.signal is Signal.DENIED and action.reason is not None:
                log.info("machine %s: refused (%s)", station.id, action.reason.value)
            station.show(action.signal, action.reason)
        elif isinstance(action, SendRequest | SendCertify):
            self._ask_server(station, action)
        elif isinstance(action, Emit):
            self.outbox.emit(action.event, self._checkpoint_of(station, action.event))
        elif isinstance(action, PublishState) and self.link.connected:
            self.link.publish_state(action.state)

    def _ask_server(self, station: MachineStation, action: SendRequest | SendCertify) -> None:
        # Not queued while offline: it would reach the server long expired.
        if isinstance(action, SendRequest):
            # The deadline is taken before publishing: the answer (or the lack of one) may be
            # on its way before publish returns.
            deadline = self.clock.monotonic() + self.request_timeout_ms / 1000
            if self.link.connected and self.link.publish_request(action.request):
                self.server_watch.asked(action.request.request_id, deadline)
            else:
                log.warning(
                    "machine %s: no broker link to ask about badge %s", station.id, action.request.badge
                )
            return
        request = action.request
        log.info(
            "machine %s: trainer %s certifies %s (%s)",
            station.id,
            request.trainer_badge,
            request.member_badge,
            request.level.value,
        )
        if not (self.link.connected and self.link.publish_certify(request)):
            log.warning("machine %s: no broker link to certify badge %s", station.id, request.member_badge)

    def _checkpoint_of(self, station: MachineStation, event: SessionEvent) -> SessionEvent | None:
        """How ``event``'s session would end if the gateway died now, saved with the event."""
        ending = station.machine.checkpoint(self.clock.monotonic(), self.clock.wall_ms())
        return ending if ending is not None and ending.session_id == event.session_id else None

    # What the worker does on its own schedule.

    def checkpoint(self) -> None:
        """Every checkpoint_interval_s: the open sessions' totals, so a crash loses at most that."""
        now, wall = self.clock.monotonic(), self.clock.wall_ms()
        endings = [station.machine.checkpoint(now, wall) for station in self.machines.values()]
        try:
            self.journal.checkpoint([ending for ending in endings if ending is not None])
        except Exception:
            log.exception("saving the open sessions' checkpoint failed")

    def send_telemetry(self) -> None:
        if not self.link.connected:
            return
        wall = self.clock.wall_ms()
        for station in self.machines.values():
            watts = station.machine.watts
            self.link.publish_telemetry(
                Telemetry(
                    machine=station.id,
                    at_ms=wall,
                    current_a=min(max(station.machine.amps, 0.0), 1000.0),
                    running=station.state is MachineStateName.RUNNING,
                    power_w=None if watts is None else min(max(watts, 0.0), 1_000_000.0),
                    state=station.state,
                )
            )

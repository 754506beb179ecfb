"""A gateway: the machines of one Raspberry Pi, their hardware, and the link.

One worker thread owns every state machine and every part: it polls readers,
buttons and current clamps each sample interval, and is woken at once by
what the MQTT thread hands over (a reply, a certification's answer, an ack, a
command) or by a reader or button that announces itself, so a decision never
waits for the next poll. Only the worker touches machines, relays and
lights, so none of them needs a lock.
"""

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self

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
from controller.clock import Clock, SystemClock
from controller.config import GatewayConfig, OfflinePolicy
from controller.hardware.factory import build_parts
from controller.hardware.gpio import PinFactory, pin_factory_from_name
from controller.hardware.interfaces import Announcing, Signal
from controller.journal import Journal
from controller.link import Link
from controller.machine import Machine, OfflineJudge
from controller.offline import AllowlistKeeper, ServerWatch, decide
from controller.station import MachineStation, rules_for
from protocol.errors import ProtocolError
from protocol.messages import (
    AccessReply,
    CertifyReply,
    Command,
    CommandAction,
    EventAck,
    MachineStateName,
    Telemetry,
    UsageEvent,
)

log = logging.getLogger(__name__)

COMPACT_EVERY_S = 60.0
ACK_GRACE_S = 1.0
"""How long a clean stop waits for the server to acknowledge the last events."""
RESEND_BATCH = 500
"""At most this many unacknowledged events are published again at each backlog check."""
RESEND_AFTER_S = 10.0
"""An event is published again when no ack came this long (real time) after it was last sent."""
BACKLOG_STATUS_EVERY_S = 10.0
"""A changed non-zero backlog is published (in the retained status) at most this often;
a backlog back to zero at once. Events acknowledged promptly publish nothing."""


class Gateway:
    """Build from a :class:`GatewayConfig`; :meth:`start`, then :meth:`stop` (or use ``with``)."""

    def __init__(self, config: GatewayConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        settings = config.gateway
        self.sample_interval_s = settings.sample_interval_ms / 1000
        self.journal = Journal.in_directory(settings.state_dir)
        self.boot = self.journal.next_boot()
        recovered = self.journal.recover()  # before any machine is powered: see Journal.recover
        for event in recovered:
            log.warning(
                "machine %s: session %s was left open by a crash; ended at its last checkpoint (%d ms running)",
                event.machine,
                event.session_id,
                event.running_ms,
            )
        self.allowlists = AllowlistKeeper(
            settings.allowlist_keys, settings.state_dir, site=settings.site, gateway=settings.id
        )
        self.server_watch = ServerWatch()
        self.machines: dict[str, MachineStation] = {}
        self._pin_factory: PinFactory | None = None
        try:
            self._pin_factory = pin_factory_from_name(settings.pin_factory)
            for machine_config in config.machines:
                # The relay is made off here: a (re)started gateway never powers a machine by itself.
                parts = build_parts(machine_config, self._pin_factory)
                rules = rules_for(machine_config, settings.request_timeout_ms)
                interlock = Machine(
                    machine_config.id, rules, offline=self._judge(machine_config.offline_policy)
                )
                self.machines[machine_config.id] = MachineStation(machine_config, interlock, parts)
        except BaseException:
            self._release()
            raise
        self.link = Link(
            broker=settings.broker,
            site=settings.site,
            gateway_id=settings.id,
            boot=self.boot,
            machines=list(self.machines),
            clock=self.clock,
            listener=self,
        )
        self._inbox: queue.SimpleQueue[inbox.Item] = queue.SimpleQueue()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self.alive_at = time.monotonic()  # real time of the worker's last pass: the systemd watchdog's
        self._stopped = False
        # Events go out live only once the journal's backlog has been replayed on this
        # connection, so the server always receives a gateway's events in seq order.
        self._live = False
        self._backlog = self.journal.backlog()  # counted here, not queried per event
        self.link.backlog = self._backlog
        self._reported_backlog = self._backlog  # what the last status published said
        self._backlog_at_check = self._backlog
        self._sent_at: dict[int, float] = {}  # seq -> when it was last published (real time)

    def _judge(self, policy: OfflinePolicy) -> OfflineJudge | None:
        if not self.allowlists.enabled:
            return None  # nothing can be trusted: refused as server_unreachable, as before
        return lambda request, wall: decide(self.allowlists.current, policy, request, wall)

    # Lifecycle.

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this gateway is already started")
        loaded = self.allowlists.load(self.clock.wall_ms())
        if loaded is not None:
            log.info("allowlist version %d loaded from %s", loaded.version, self.allowlists.path)
        for station in self.machines.values():
            self._carry_out(station, station.machine.start(self.clock.monotonic(), self.clock.wall_ms()))
            if isinstance(station.parts.reader, Announcing):
                station.parts.reader.set_listener(self._announcer(inbox.Tapped(station.id)))
            if isinstance(station.parts.button, Announcing):
                station.parts.button.set_listener(self._announcer(inbox.Pressed(station.id)))
        self._thread = threading.Thread(
            target=self._work, name=f"gateway-{self.config.gateway.id}", daemon=True
        )
        self._thread.start()
        self.link.start()
        log.info(
            "gateway %s started (boot %d), %d machines", self.config.gateway.id, self.boot, len(self.machines)
        )

    def stop(self) -> None:
        """Close every session, power off idle machines, say offline, release the hardware."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._inbox.put(inbox.Stop())
            self._thread.join()
        for station in self.machines.values():
            for part in (station.parts.reader, station.parts.button):
                if isinstance(part, Announcing):
                    part.set_listener(None)
            with self._guard(station, "shutting down"):
                self._carry_out(
                    station, station.machine.shutdown(self.clock.monotonic(), self.clock.wall_ms())
                )
        self._await_acks(ACK_GRACE_S)
        self.link.stop()
        self._release()
        self._notify()
        log.info("gateway %s stopped", self.config.gateway.id)

    def _await_acks(self, timeout: float) -> None:
        """Give the server a moment to acknowledge the last events, so a clean restart
        replays nothing it already has. Whatever is not acknowledged stays journaled."""
        deadline = time.monotonic() + timeout  # real time: the grace is for the network
        while self.link.connected and self.journal.unacked(limit=1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                item = self._inbox.get(timeout=remaining)
            except queue.Empty:
                return
            if isinstance(item, inbox.Ack):
                self._handle(item)

    def _release(self) -> None:
        for station in self.machines.values():
            station.parts.close()
        if self._pin_factory is not None:
            self._pin_factory.close()
        self.journal.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds, re-checked each time the worker has done something."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def wait_connected(self, timeout: float) -> bool:
        return self.wait_for(lambda: self._live, timeout)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # What the link hands over (paho's thread): queue it for the worker, which wakes at once.

    def on_connected(self) -> None:
        self._inbox.put(inbox.Connected())

    def on_reply(self, reply: AccessReply) -> None:
        self._inbox.put(inbox.Reply(reply))

    def on_certify_reply(self, reply: CertifyReply) -> None:
        self._inbox.put(inbox.CertifyAnswer(reply))

    def on_ack(self, ack: EventAck) -> None:
        self._inbox.put(inbox.Ack(ack))

    def on_command(self, command: Command) -> None:
        self._inbox.put(inbox.CommandArrived(command))

    def on_allowlist(self, payload: bytes) -> None:
        self._inbox.put(inbox.AllowlistArrived(payload))

    def _announcer(self, item: inbox.Item) -> Callable[[], None]:
        return lambda: self._inbox.put(item)

    # The worker.

    def _work(self) -> None:
        next_sample = next_compact = self.clock.monotonic()
        next_checkpoint = next_sample + self.config.gateway.checkpoint_interval_s
        next_backlog = next_sample + BACKLOG_STATUS_EVERY_S
        next_telemetry = next_sample + self.config.gateway.telemetry_interval_s
        while True:
            wait = min(max(0.0, next_sample - self.clock.monotonic()), self.sample_interval_s)
            try:
                item: inbox.Item | None = self._inbox.get(timeout=wait)
            except queue.Empty:
                item = None
            while item is not None:
                if isinstance(item, inbox.Stop):
                    return
                self._handle(item)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = None
            now = self.clock.monotonic()
            if now >= next_sample:
                # Counted from now, not from the last deadline: after a clock jump (or a
                # long stall) one sample catches up, rather than a burst of them.
                next_sample = now + self.sample_interval_s
                for station in self.machines.values():
                    self._sample(station)
                self.server_watch.check(now)
            if now >= next_checkpoint:
                next_checkpoint = now + self.config.gateway.checkpoint_interval_s
                self._checkpoint()
            if now >= next_telemetry:
                next_telemetry = now + self.config.gateway.telemetry_interval_s
                self._send_telemetry()
            if now >= next_compact:
                next_compact = now + COMPACT_EVERY_S
                self._compact()
            if now >= next_backlog:
                next_backlog = now + BACKLOG_STATUS_EVERY_S
                self._check_backlog()
            elif self._backlog == 0 and self._reported_backlog != 0:
                self._report_backlog()  # drained: say so at once
            self.alive_at = time.monotonic()
            self._notify()

    @contextlib.contextmanager
    def _guard(self, station: MachineStation, doing: str) -> Iterator[None]:
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

    def _sample(self, station: MachineStation) -> None:
        with self._guard(station, "reading its badge reader, button and current sensor"):
            self._read_badges(station)
            self._read_button(station)
            amps = station.parts.current.amps()
            self._carry_out(
                station, station.machine.current(amps, self.clock.monotonic(), self.clock.wall_ms())
            )

    def _read_badges(self, station: MachineStation) -> None:
        for uid in station.taps():
            self.server_watch.check(self.clock.monotonic())
            station.machine.server_reachable = self.link.connected and self.server_watch.answering
            self._carry_out(station, station.machine.badge(uid, self.clock.monotonic(), self.clock.wall_ms()))

    def _read_button(self, station: MachineStation) -> None:
        for _ in station.presses():
            self._carry_out(station, station.machine.button(self.clock.monotonic(), self.clock.wall_ms()))

    def _handle(self, item: inbox.Item) -> None:
        if isinstance(item, inbox.Tapped):
            station = self.machines[item.machine]
            with self._guard(station, "reading its badge reader"):
                self._read_badges(station)
        elif isinstance(item, inbox.Pressed):
            station = self.machines[item.machine]
            with self._guard(station, "reading its button"):
                self._read_button(station)
        elif isinstance(item, inbox.Reply | inbox.CertifyAnswer):
            self.server_watch.heard(item.reply.request_id)
            self._answer(item.reply)
        elif isinstance(item, inbox.Ack):
            self.server_watch.heard()
            if not item.ack.ok:
                log.error("the server refused event %d for good: %s", item.ack.seq, item.ack.error)
            self._sent_at.pop(item.ack.seq, None)
            if self.journal.ack(item.ack.seq):
                self._count_backlog(-1)
        elif isinstance(item, inbox.CommandArrived):
            self._obey(item.command)
        elif isinstance(item, inbox.Connected):
            self._reported_backlog = self.link.backlog or 0  # the birth status carried it
            self._replay()
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
        with self._guard(station, f"acting on a {type(reply).__name__}"):
            now, wall = self.clock.monotonic(), self.clock.wall_ms()
            if isinstance(reply, AccessReply):
                self._carry_out(station, station.machine.reply(reply, now, wall))
            else:
                self._carry_out(station, station.machine.certify_reply(reply, now, wall))

    def _replay(self) -> None:
        """On (re)connection: the journal's unacknowledged events in order, then the machine states."""
        backlog = self.journal.unacked()
        for event in backlog:
            if not self._publish_event(event):
                return  # the link dropped again; the next connection replays
        if backlog:
            log.info(
                "replayed %d unacknowledged events (seq %d to %d)",
                len(backlog),
                backlog[0].seq,
                backlog[-1].seq,
            )
        wall = self.clock.wall_ms()
        for station in self.machines.values():
            self.link.publish_state(station.machine.snapshot(wall))
        self._live = True

    def _obey(self, command: Command) -> None:
        log.info("command %s: %s %s", command.command_id, command.action.value, command.machine or "(all)")
        if command.action is CommandAction.REFRESH:
            self._report_backlog()
            self._replay()
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
            with self._guard(station, f"carrying out {command.action.value}"):
                now, wall = self.clock.monotonic(), self.clock.wall_ms()
                if command.action is CommandAction.LOCK:
                    self._carry_out(station, station.machine.lock_command(now, wall))
                else:
                    self._carry_out(station, station.machine.unlock_command(now, wall))

    def _carry_out(self, station: MachineStation, actions: list[Action]) -> None:
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
            usage = self.journal.append(action.event, self._checkpoint_of(station, action.event))
            self._count_backlog(+1)
            if self._live and self.link.connected:
                self._publish_event(usage)
            else:
                self._live = False  # stays in the journal, replayed on the next connection
        elif isinstance(action, PublishState) and self.link.connected:
            self.link.publish_state(action.state)

    def _ask_server(self, station: MachineStation, action: SendRequest | SendCertify) -> None:
        # Not queued while offline: it would reach the server long expired.
        if isinstance(action, SendRequest):
            # The deadline is taken before publishing: the answer (or the lack of one) may be
            # on its way before publish returns.
            deadline = self.clock.monotonic() + self.config.gateway.request_timeout_ms / 1000
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

    def _checkpoint(self) -> None:
        """Every checkpoint_interval_s: the open sessions' totals, so a crash loses at most that."""
        now, wall = self.clock.monotonic(), self.clock.wall_ms()
        endings = [station.machine.checkpoint(now, wall) for station in self.machines.values()]
        try:
            self.journal.checkpoint([ending for ending in endings if ending is not None])
        except Exception:
            log.exception("saving the open sessions' checkpoint failed")

    def _count_backlog(self, change: int) -> None:
        self._backlog += change
        self.link.backlog = self._backlog

    def _check_backlog(self) -> None:
        """Every BACKLOG_STATUS_EVERY_S: publish a changed backlog, unless it is a passing one.

        An event waits for its ack for a few milliseconds; only a backlog found at two checks
        in a row is worth a status, so that a gateway whose events are acknowledged promptly
        publishes none, however busy it is.
        """
        backlog, stuck = self._backlog, self._backlog_at_check > 0
        self._backlog_at_check = backlog
        if backlog != self._reported_backlog and (backlog == 0 or stuck):
            self._report_backlog()
        if stuck and backlog and self._live and self.link.connected:
            self._resend()

    def _publish_event(self, event: UsageEvent) -> bool:
        if not self.link.publish_event(event):
            return False
        self._sent_at[event.seq] = time.monotonic()
        return True

    def _resend(self) -> None:
        """Publish again the oldest events still unacknowledged after a whole check interval.

        The broker link stayed up, but the server may have lost what was sent meanwhile (it
        was down, or its connection was): without this, those events would wait for the
        gateway's next reconnection, which may be days away. The server applies each once.
        """
        now = time.monotonic()  # real time: what is waited for is the network and the server
        pending = [
            event
            for event in self.journal.unacked(limit=RESEND_BATCH)
            if now - self._sent_at.get(event.seq, float("-inf")) >= RESEND_AFTER_S
        ]
        sent = sum(1 for event in pending if self._publish_event(event))
        if sent:
            log.info("published again %d unacknowledged events (from seq %d)", sent, pending[0].seq)

    def _report_backlog(self) -> None:
        """Publish the retained ``online`` status with the backlog as it is now."""
        if self.link.connected and self.link.publish_status():
            self._reported_backlog = self._backlog

    def _send_telemetry(self) -> None:
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

    def _compact(self) -> None:
        try:
            removed = self.journal.compact()
        except Exception:
            log.exception("compacting the journal failed")
        else:
            if removed:
                log.debug("journal: %d acknowledged events removed", removed)

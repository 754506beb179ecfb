"""A gateway: the machines of one Raspberry Pi, their hardware, and the link.

One worker thread owns every state machine and every part: it polls readers,
buttons and current clamps each sample interval, and is woken at once by
what the MQTT thread hands over (a reply, a certification's answer, an ack, a
command) or by a reader or button that announces itself, so a decision never
waits for the next poll. Only the worker touches machines, relays and
lights, so none of them needs a lock.

This module builds, starts and stops a gateway and runs the worker's schedule;
what the worker does with each item and action is in :mod:`controller.worker`,
and how events reach the server (journal, replay, resend, backlog) in
:mod:`controller.outbox`.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from controller import inbox
from controller.clock import Clock, SystemClock
from controller.config import GatewayConfig, OfflinePolicy
from controller.hardware.factory import build_parts
from controller.hardware.gpio import PinFactory, pin_factory_from_name
from controller.hardware.interfaces import Announcing
from controller.journal import Journal
from controller.link import Link
from controller.machine import Machine, OfflineJudge
from controller.offline import AllowlistKeeper, ServerWatch, decide
from controller.outbox import RESEND_BATCH, Outbox
from controller.station import MachineStation, rules_for
from controller.worker import Worker
from protocol.messages import AccessReply, CertifyReply, Command, EventAck

__all__ = [
    "ACK_GRACE_S",
    "BACKLOG_STATUS_EVERY_S",
    "COMPACT_EVERY_S",
    "RESEND_AFTER_S",
    "RESEND_BATCH",
    "Gateway",
]

log = logging.getLogger(__name__)

# Read from this module at each use, so that a test (or tests/faults/gateway_process.py)
# may change them here.
COMPACT_EVERY_S = 60.0
ACK_GRACE_S = 1.0
"""How long a clean stop waits for the server to acknowledge the last events."""
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
        self._outbox = Outbox(self.journal, self.link)
        self._worker = Worker(
            self.machines,
            clock=self.clock,
            link=self.link,
            journal=self.journal,
            outbox=self._outbox,
            allowlists=self.allowlists,
            server_watch=self.server_watch,
            request_timeout_ms=settings.request_timeout_ms,
        )

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
            self._worker.carry_out(
                station, station.machine.start(self.clock.monotonic(), self.clock.wall_ms())
            )
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
            with self._worker.guard(station, "shutting down"):
                self._worker.carry_out(
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
                self._worker.handle(item)

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
        return self.wait_for(lambda: self._outbox.live, timeout)

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

    # The worker thread: items as they come, and its schedule.

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
                self._worker.handle(item)
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
                    self._worker.sample(station)
                self.server_watch.check(now)
            if now >= next_checkpoint:
                next_checkpoint = now + self.config.gateway.checkpoint_interval_s
                self._worker.checkpoint()
            if now >= next_telemetry:
                next_telemetry = now + self.config.gateway.telemetry_interval_s
                self._worker.send_telemetry()
            if now >= next_compact:
                next_compact = now + COMPACT_EVERY_S
                self._outbox.compact()
            if now >= next_backlog:
                next_backlog = now + BACKLOG_STATUS_EVERY_S
                self._outbox.check(RESEND_AFTER_S)
            elif self._outbox.drained_unreported:
                self._outbox.report()  # drained: say so at once
            self.alive_at = time.monotonic()
            self._notify()

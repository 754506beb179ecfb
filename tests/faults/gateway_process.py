"""A real gateway daemon in a process of its own, driven line by line: for fault tests.

    python -m tests.faults.gateway_process CONFIG [--keepalive S] [--reconnect-max S] [--backlog-check S]

It builds :class:`controller.gateway.Gateway` from the TOML file ``CONFIG`` (simulated
readers and clamps, relays and lights on gpiozero's mock pins), starts it, prints
``{"ready": true, ...}`` and then reads one command a line on stdin, answering each with
one JSON line on stdout (the gateway's state after the command; a command may start with
``@<id>``, which the answer repeats as ``"id"``):

    tap <machine> <uid>      a badge on the machine's reader
    amps <machine> <A>       the machine now draws A amperes
    press <machine>          the machine's button
    state                    nothing: just the state
    stop                     a clean stop (sessions closed, offline status), then exit

The state: ``boot``, ``connected``, ``backlog`` (events waiting for the server's ack),
``last_seq``, and per machine its ``state``, open ``session`` and ``relay`` (read from the
relay's mock pin: on when the pin is at its active level).

Being a process, it can be killed with SIGKILL at any moment and started again on the
same state directory, as a Raspberry Pi that crashes or loses power. Two things differ
from the daemon, for the tests' books only:

* the journal is never compacted, so that it keeps every event the gateway ever
  recorded: it is the record of what was sensed, compared with what the server billed;
* every change of a relay is appended to ``relay-log.jsonl`` in the state directory,
  with what the machine was doing then (its state, session and the current it was
  made to draw), so that a test can check no relay was switched unsafely.

``--keepalive`` shortens the MQTT keepalive (15 s in the daemon), so that a blackholed
network is noticed within a test's time; ``--reconnect-max`` caps paho's back-off between
reconnection attempts (16 s in the daemon), so that a restored network is used at once;
``--backlog-check`` shortens the interval of the gateway's backlog checks (10 s in the
daemon), after two of which an unacknowledged event is published again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import controller.gateway
import controller.link
from controller.config import load_config
from controller.gateway import Gateway
from controller.hardware.interfaces import Switch
from controller.journal import Journal
from controller.station import MachineStation

RELAY_LOG = "relay-log.jsonl"


def _no_compaction(self: Journal) -> int:
    return 0


def relay_level(switch: Switch) -> bool:
    """Whether the relay is closed, read from its gpiozero mock pin (not from the interlock)."""
    switch = switch.inner if isinstance(switch, RecordingSwitch) else switch
    device: Any = getattr(switch, "_device", None)
    if device is None:  # not a gpiozero relay: trust what it says
        return switch.is_on
    level = bool(device.pin.state)
    return level == bool(device.active_high)


class RecordingSwitch:
    """The machine's relay, every change of which is written down with its circumstances."""

    def __init__(self, inner: Switch, station: MachineStation, recorder: RelayRecorder) -> None:
        self.inner = inner
        self.station = station
        self.recorder = recorder

    def on(self) -> None:
        with self.recorder.lock:  # a state read sees the change only once it is logged
            self.inner.on()
            self.recorder.record(self.station, "on", relay_level(self.inner))

    def off(self) -> None:
        with self.recorder.lock:
            self.inner.off()
            self.recorder.record(self.station, "off", relay_level(self.inner))

    @property
    def is_on(self) -> bool:
        return self.inner.is_on

    def close(self) -> None:
        self.inner.close()


class RelayRecorder:
    """Appends one JSON line per relay change to ``relay-log.jsonl`` (flushed at once)."""

    def __init__(self, path: Path, boot: int) -> None:
        self.boot = boot
        self._file = path.open("a", encoding="utf-8")
        self.lock = threading.RLock()
        self.amps: dict[str, tuple[float, float]] = {}
        """Per machine, the current the test made it draw, and since when (epoch seconds)."""

    def record(self, station: MachineStation, op: str, relay: bool) -> None:
        amps, since = self.amps.get(station.id, (0.0, 0.0))
        line = {
            "t": time.time(),
            "pid": os.getpid(),
            "boot": self.boot,
            "machine": station.id,
            "op": op,
            "relay": relay,
            "state": station.state.value,
            "session": station.session_id,
            "amps": amps,
            "amps_since": since,
            "running_above_a": station.config.current.running_above_a,
        }
        with self.lock:
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self.lock:
            self._file.close()


def snapshot(gateway: Gateway, recorder: RelayRecorder) -> dict[str, Any]:
    with recorder.lock:
        relays = {station.id: relay_level(station.parts.switch) for station in gateway.machines.values()}
    return {
        "ok": True,
        "pid": os.getpid(),
        "boot": gateway.boot,
        "connected": gateway.link.connected,
        "backlog": gateway.journal.backlog(),
        "last_seq": gateway.journal.last_seq,
        "machines": {
            station.id: {
                "state": station.state.value,
                "session": station.session_id,
                "relay": relays[station.id],
                "amps": station.amps,
            }
            for station in gateway.machines.values()
        },
    }


def _answer(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def serve(gateway: Gateway, recorder: RelayRecorder, commands: TextIO, out: TextIO) -> None:
    for line in commands:
        words = line.split()
        # "@<id> command...": the answer carries the id, so a caller that gave up waiting
        # for an answer does not take it for the answer to its next command.
        tag = words.pop(0)[1:] if words and words[0].startswith("@") else None
        if not words:
            continue
        try:
            verb = words[0]
            if verb == "stop":
                gateway.stop()
                _answer(out, {"ok": True, "stopped": True, "id": tag})
                return
            if verb == "tap":
                gateway.machines[words[1]].tap(words[2])
            elif verb == "amps":
                amps = float(words[2])
                recorder.amps[words[1]] = (amps, time.time())
                gateway.machines[words[1]].set_amps(amps)
            elif verb == "press":
                gateway.machines[words[1]].press()
            elif verb != "state":
                raise ValueError(f"unknown command {verb!r}")
            _answer(out, {**snapshot(gateway, recorder), "id": tag})
        except Exception as error:
            _answer(out, {"ok": False, "error": f"{type(error).__name__}: {error}", "id": tag})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.gateway_process")
    parser.add_argument("config", type=Path)
    parser.add_argument("--keepalive", type=int, default=None, help="MQTT keepalive, seconds")
    parser.add_argument(
        "--reconnect-max", type=int, default=None, help="longest wait between reconnection attempts, s"
    )
    parser.add_argument(
        "--backlog-check", type=float, default=None, help="seconds between backlog checks (and resends)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("ATELIER_GATEWAY_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s [{os.getpid()}] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.keepalive is not None:
        controller.link.KEEPALIVE_S = args.keepalive
    if args.backlog_check is not None:
        controller.gateway.BACKLOG_STATUS_EVERY_S = args.backlog_check
        controller.gateway.RESEND_AFTER_S = args.backlog_check
    Journal.compact = _no_compaction  # type: ignore[method-assign]
    config = load_config(args.config, environ={})
    gateway = Gateway(config)
    if args.reconnect_max is not None:
        client: Any = getattr(gateway.link, "_client")  # noqa: B009 - a test knob on paho itself
        client.reconnect_delay_set(min_delay=1, max_delay=args.reconnect_max)
    recorder = RelayRecorder(Path(config.gateway.state_dir) / RELAY_LOG, gateway.boot)
    for station in gateway.machines.values():
        station.parts.switch = RecordingSwitch(station.parts.switch, station, recorder)
        recorder.record(station, "boot", relay_level(station.parts.switch))
    gateway.start()
    _answer(sys.stdout, {**snapshot(gateway, recorder), "ready": True})
    try:
        serve(gateway, recorder, sys.stdin, sys.stdout)
    finally:
        gateway.stop()
        recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

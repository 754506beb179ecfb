"""Helpers to run gateways in tests: configurations (simulated parts on mock pins) and
ways to drive a running gateway and wait for the effect."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from controller.clock import ManualClock
from controller.config import GatewayConfig, parse_config
from controller.gateway import Gateway
from controller.station import MachineStation
from protocol.messages import Command, CommandAction
from protocol.topics import Channel
from tests.controller.responder import Responder

_commands = itertools.count(1)


def machine_table(machine_id: str, first_pin: int, **overrides: Any) -> dict[str, Any]:
    current = {
        "type": "simulated",
        "running_above_a": 0.5,
        "idle_below_a": 0.3,
        "running_after_s": 1.0,
        "idle_after_s": 5.0,
    }
    current.update(overrides.pop("current", {}))
    return {
        "id": machine_id,
        "name": f"Machine {machine_id}",
        "idle_timeout_s": 300.0,
        "reader": {"type": "simulated"},
        "current": current,
        "switch": {"type": "gpio", "pin": first_pin, "active_high": False},
        "indicator": {"type": "gpio", "green_pin": first_pin + 1, "red_pin": first_pin + 2},
        **overrides,
    }


def gateway_config(
    broker_url: str,
    site_id: str,
    state_dir: Path,
    *,
    gateway_id: str = "gw-1",
    sewing: dict[str, Any] | None = None,
    **gateway: Any,
) -> GatewayConfig:
    """Two machines on a gateway of ``site_id``, every part simulated or on mock pins.

    ``sewing`` adds or overrides keys of the sewing machine's table (a button, a window).
    """
    data = {
        "gateway": {
            "id": gateway_id,
            "site": site_id,
            "mqtt_url": broker_url,
            "state_dir": str(state_dir),
            "sample_interval_ms": 10,
            "telemetry_interval_s": 3600,
            **gateway,
        },
        "machine": [machine_table("sew-1", 17, **(sewing or {})), machine_table("print-1", 22)],
    }
    return parse_config(data, environ={})


def settle(gateway: Gateway, station: MachineStation, amps: float, at: float, clock: ManualClock) -> None:
    """Set the current, move the clock to ``at``, and wait for the worker to have sampled it there."""
    station.set_amps(amps)
    clock.set(at)
    assert gateway.wait_for(lambda: station.machine.seen_until >= at and station.amps == amps, 5)


def send_command(responder: Responder, gateway: Gateway, action: CommandAction, **fields: Any) -> str:
    command_id = str(fields.pop("command_id", f"cmd-{next(_commands)}"))
    now = gateway.clock.wall_ms()
    responder.send(
        gateway.config.gateway.id,
        Channel.COMMAND,
        Command(
            command_id=command_id,
            action=action,
            issued_at_ms=now,
            expires_at_ms=fields.pop("expires_at_ms", now + 10_000),
            **fields,
        ),
    )
    return command_id


def round_trip(responder: Responder, gateway: Gateway) -> None:
    """Wait until everything sent to the gateway so far has been handled (a refresh echoes a status)."""
    before = len(responder.seen.statuses)
    send_command(responder, gateway, CommandAction.REFRESH)
    assert responder.wait_for(lambda seen: len(seen.statuses) > before)

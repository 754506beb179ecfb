"""What the live view shows: machine states kept in memory from the gateways' retained messages,
joined with the database (gateway online, lockouts, open sessions, today's usage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protocol.messages import MachineState, MachineStateName, encode
from protocol.topics import Channel, topic
from server.clock import to_ms
from server.db import SessionFactory
from server.live import LiveWorkshop
from server.mqtt.handlers import Handlers
from server.mqtt.service import INGEST_CHANNELS, UNSHARED_CHANNELS
from server.web.live_view import Status, snapshot
from tests.server.conftest import Workshop

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _state(machine: str, name: MachineStateName, at: datetime, member: int | None = None) -> MachineState:
    return MachineState(machine=machine, state=name, member_id=member, at_ms=to_ms(at))


def test_a_later_state_wins_and_a_late_retained_one_does_not() -> None:
    live = LiveWorkshop()
    assert live.machine_state("gw", _state("sew-1", MachineStateName.RUNNING, NOW, 7), NOW)
    version = live.version
    assert not live.machine_state(
        "gw", _state("sew-1", MachineStateName.LOCKED, NOW - timedelta(minutes=5)), NOW
    )
    assert live.version == version
    assert live.machines()["sew-1"].state is MachineStateName.RUNNING
    live.touch()
    assert live.version == version + 1


def test_the_ingest_lane_reads_machine_states_from_every_server_process() -> None:
    assert Channel.MACHINE_STATE in INGEST_CHANNELS
    assert Channel.MACHINE_STATE in UNSHARED_CHANNELS


def test_the_handlers_keep_each_machines_state(session_factory: SessionFactory, workshop: Workshop) -> None:
    handlers = Handlers(workshop.site, session_factory, lambda: NOW, 5000)
    name = topic(workshop.site, workshop.gateway, Channel.MACHINE_STATE, "sewing-1")
    assert (
        handlers.handle(name, encode(_state("sewing-1", MachineStateName.UNLOCKED, NOW, workshop.alice)))
        is None
    )
    found = handlers.live.machines()["sewing-1"]
    assert (found.gateway, found.state, found.member_id) == (
        workshop.gateway,
        MachineStateName.UNLOCKED,
        workshop.alice,
    )
    # Another machine's state on this machine's topic, garbage, or a cleared retained message: ignored.
    version = handlers.live.version
    handlers.handle(name, encode(_state("printer-1", MachineStateName.RUNNING, NOW)))
    handlers.handle(name, b"\xff{not json")
    handlers.handle(name, b"")
    assert handlers.live.version == version
    assert set(handlers.live.machines()) == {"sewing-1"}


def test_the_snapshot_joins_live_states_with_the_workshop(
    session_factory: SessionFactory, workshop: Workshop
) -> None:
    from server.models import Gateway, GatewayState  # noqa: PLC0415

    live = LiveWorkshop()
    with session_factory() as db:
        db.query(Gateway).filter(Gateway.slug == workshop.gateway).update({"state": GatewayState.ONLINE})
        db.commit()
        live.machine_state(
            workshop.gateway, _state("sewing-1", MachineStateName.RUNNING, NOW, workshop.alice), NOW
        )
        live.machine_state(
            workshop.gateway, _state("overlocker-1", MachineStateName.UNLOCKED, NOW, workshop.bob), NOW
        )
        # A state claimed by another gateway than the machine's is not the machine's.
        live.machine_state("gw-fablab", _state("free-1", MachineStateName.RUNNING, NOW, workshop.bob), NOW)
        view = {m.slug: m for m in snapshot(db, live, NOW).machines}
    assert (view["sewing-1"].status, view["sewing-1"].member_name) == (Status.IN_USE, "Alice Martin")
    assert (view["overlocker-1"].status, view["overlocker-1"].member_name) == (Status.IDLE, "Bob Durand")
    assert view["free-1"].status is Status.LOCKED
    assert view["cutter-1"].status is Status.LOCKED_OUT
    assert view["cutter-1"].lockout_reason == "blade being replaced"
    assert view["printer-1"].status is Status.OFFLINE  # its gateway never came online

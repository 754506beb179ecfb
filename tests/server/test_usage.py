"""Usage events are applied exactly once, whatever their order, and never across gateways."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import DecidedBy, EventAck, EventKind, UsageEvent
from server.clock import to_ms
from server.db import SessionFactory
from server.models import GatewayEvent, UsageSession
from server.usage import ingest
from tests.server.conftest import NOW, Workshop

T0 = to_ms(NOW)


def session_events(
    session_id: str = "s-1", first_seq: int = 1, machine: str = "sewing-1"
) -> list[UsageEvent]:
    """A whole session as a gateway reports it: start, run 60 s, stop, end after 100 s."""
    common: dict[str, Any] = {"session_id": session_id, "machine": machine}
    return [
        UsageEvent(
            seq=first_seq, kind=EventKind.SESSION_STARTED, at_ms=T0, badge="A1B2C3D4",
            decided_by=DecidedBy.SERVER, **common,
        ),
        UsageEvent(
            seq=first_seq + 1, kind=EventKind.RUNNING_STARTED, at_ms=T0 + 10_000, unlocked_ms=10_000,
            idle_ms=10_000, **common,
        ),
        UsageEvent(
            seq=first_seq + 2, kind=EventKind.RUNNING_STOPPED, at_ms=T0 + 70_000, unlocked_ms=70_000,
            running_ms=60_000, idle_ms=10_000, **common,
        ),
        UsageEvent(
            seq=first_seq + 3, kind=EventKind.SESSION_ENDED, at_ms=T0 + 100_000, unlocked_ms=100_000,
            running_ms=60_000, idle_ms=40_000, end_reason="badge_out", **common,
        ),
    ]  # fmt: skip


def snapshot(db: Session, session_id: str) -> tuple[Any, ...]:
    db.expire_all()
    row = db.scalars(sa.select(UsageSession).where(UsageSession.session_id == session_id)).one()
    return (
        row.gateway_id, row.machine_id, row.member_id, row.badge_uid, row.decided_by, row.started_at,
        row.ended_at, row.unlocked_ms, row.running_ms, row.idle_ms, row.end_reason, row.last_event_seq,
    )  # fmt: skip


def count(db: Session, model: type[UsageSession | GatewayEvent]) -> int:
    return db.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def test_a_whole_session(db: Session, workshop: Workshop) -> None:
    acks = [ingest(db, workshop.gateway, event, NOW, site=workshop.site) for event in session_events()]
    assert acks == [EventAck(seq=seq) for seq in (1, 2, 3, 4)]
    session = db.scalars(sa.select(UsageSession)).one()
    assert session.session_id == "s-1"
    assert session.gateway.slug == workshop.gateway
    assert session.machine.slug == "sewing-1"
    assert session.member_id == workshop.alice  # the badge's holder: the event named no member
    assert (session.badge_uid, session.decided_by) == ("A1B2C3D4", "server")
    assert session.started_at == NOW
    assert session.ended_at == NOW + timedelta(seconds=100)
    assert (session.unlocked_ms, session.running_ms, session.idle_ms) == (100_000, 60_000, 40_000)
    assert (session.end_reason, session.last_event_seq) == ("badge_out", 4)
    assert count(db, GatewayEvent) == 4


def test_an_open_session_has_no_end(db: Session, workshop: Workshop) -> None:
    for event in session_events()[:2]:
        ingest(db, workshop.gateway, event, NOW)
    session = db.scalars(sa.select(UsageSession)).one()
    assert (session.ended_at, session.end_reason, session.unlocked_ms) == (None, None, 10_000)


def test_the_same_event_twice_is_applied_once(db: Session, workshop: Workshop) -> None:
    first, second = session_events()[:2]
    assert ingest(db, workshop.gateway, first, NOW) == EventAck(seq=1)
    assert ingest(db, workshop.gateway, second, NOW) == EventAck(seq=2)
    before = snapshot(db, "s-1")
    assert ingest(db, workshop.gateway, second, NOW + timedelta(minutes=5)) == EventAck(seq=2, ok=True)
    assert snapshot(db, "s-1") == before
    assert count(db, GatewayEvent) == 2
    received = db.scalars(sa.select(GatewayEvent.received_at).where(GatewayEvent.seq == 2)).one()
    assert received == NOW  # the first delivery's record stands


def test_a_replayed_session_changes_nothing(db: Session, workshop: Workshop) -> None:
    events = session_events()
    for event in events:
        ingest(db, workshop.gateway, event, NOW)
    before = snapshot(db, "s-1")
    # A gateway that lost its acks replays its whole journal.
    assert [ingest(db, workshop.gateway, event, NOW) for event in events] == [
        EventAck(seq=event.seq) for event in events
    ]
    assert snapshot(db, "s-1") == before
    assert (count(db, UsageSession), count(db, GatewayEvent)) == (1, 4)


def test_an_end_before_its_start(db: Session, workshop: Workshop) -> None:
    started, running, stopped, ended = session_events()
    assert ingest(db, workshop.gateway, ended, NOW).ok
    session = snapshot(db, "s-1")
    assert session[5:] == (
        NOW + timedelta(seconds=100),
        NOW + timedelta(seconds=100),
        100_000,
        60_000,
        40_000,
        "badge_out",
        4,
    )
    for event in (started, stopped, running):
        assert ingest(db, workshop.gateway, event, NOW).ok
    in_order = session_events("s-2", first_seq=5)
    for event in in_order:
        ingest(db, workshop.gateway, event, NOW)
    assert snapshot(db, "s-1")[:-1] == snapshot(db, "s-2")[:-1]
    assert snapshot(db, "s-1")[5] == NOW


def test_every_order_of_arrival_gives_the_same_session(db: Session, workshop: Workshop) -> None:
    expected = None
    for number, order in enumerate(itertools.permutations(range(4))):
        events = session_events(f"s-{number}", first_seq=4 * number + 1)
        for index in order:
            assert ingest(db, workshop.gateway, events[index], NOW).ok
        result = snapshot(db, f"s-{number}")[:-1]  # last_event_seq differs by construction
        assert expected is None or result == expected, order
        expected = result
    assert count(db, UsageSession) == 24


def test_the_member_named_by_the_gateway_wins_over_the_badge(db: Session, workshop: Workshop) -> None:
    event = msgspec.structs.replace(session_events()[0], member_id=workshop.bob)
    ingest(db, workshop.gateway, event, NOW)
    assert db.scalars(sa.select(UsageSession.member_id)).one() == workshop.bob


def test_an_unknown_member_and_badge_leave_the_member_empty(db: Session, workshop: Workshop) -> None:
    event = msgspec.structs.replace(session_events()[0], member_id=999_999, badge="FFFF0000")
    assert ingest(db, workshop.gateway, event, NOW).ok
    assert db.scalars(sa.select(UsageSession.member_id)).one() is None


def test_unknown_gateway_is_refused_for_good(db: Session, workshop: Workshop) -> None:
    ack = ingest(db, "gw-nowhere", session_events()[0], NOW)
    assert ack == EventAck(seq=1, ok=False, error="unknown gateway gw-nowhere")
    assert (count(db, UsageSession), count(db, GatewayEvent)) == (0, 0)


def test_a_gateway_of_another_site_is_unknown(db: Session, workshop: Workshop) -> None:
    ack = ingest(db, workshop.gateway, session_events()[0], NOW, site="elsewhere")
    assert not ack.ok


def test_unknown_machine_is_refused_for_good(db: Session, workshop: Workshop) -> None:
    ack = ingest(db, workshop.gateway, session_events(machine="loom-9")[0], NOW)
    assert ack == EventAck(seq=1, ok=False, error="unknown machine loom-9")
    assert (count(db, UsageSession), count(db, GatewayEvent)) == (0, 0)


def test_a_session_id_of_another_gateway_is_refused(db: Session, workshop: Workshop) -> None:
    for event in session_events()[:2]:
        ingest(db, workshop.gateway, event, NOW)
    before = snapshot(db, "s-1")
    # The fablab gateway happens to make the same session id, for its own machine.
    clash = session_events(machine="printer-1")[2]
    ack = ingest(db, workshop.other_gateway, clash, NOW)
    assert ack == EventAck(seq=3, ok=False, error="session s-1 belongs to another gateway")
    assert snapshot(db, "s-1") == before
    assert count(db, GatewayEvent) == 2  # the refusal is not recorded as applied
    # Its own events keep flowing, seq by seq, independently of the other gateway's.
    own = session_events("fablab-1", first_seq=1, machine="printer-1")[0]
    assert ingest(db, workshop.other_gateway, own, NOW).ok


def test_a_session_cannot_change_machine(db: Session, workshop: Workshop) -> None:
    ingest(db, workshop.gateway, session_events()[0], NOW)
    moved = session_events(machine="free-1")[1]
    ack = ingest(db, workshop.gateway, moved, NOW)
    assert ack == EventAck(seq=2, ok=False, error="session s-1 is on machine sewing-1, not free-1")


def test_a_second_end_changes_nothing(db: Session, workshop: Workshop) -> None:
    events = session_events()
    for event in events:
        ingest(db, workshop.gateway, event, NOW)
    again = msgspec.structs.replace(events[3], seq=9, at_ms=T0 + 500_000, end_reason="timeout")
    assert ingest(db, workshop.gateway, again, NOW).ok
    session = snapshot(db, "s-1")
    assert (session[6], session[10], session[11]) == (NOW + timedelta(seconds=100), "badge_out", 9)


def test_concurrent_deliveries_apply_each_event_once(
    session_factory: SessionFactory, db: Session, workshop: Workshop
) -> None:
    """Several server processes sharing a subscription may get the same events at once."""
    events = [event for number in range(5) for event in session_events(f"s-{number}", 4 * number + 1)]
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def deliver(order: list[UsageEvent]) -> None:
        try:
            start.wait(timeout=10)
            with session_factory() as own:
                for event in order:
                    assert ingest(own, workshop.gateway, event, NOW).ok
        except BaseException as error:  # reported by the test thread
            failures.append(error)

    orders = [events, events[::-1], events[1::2] + events[::2], events[::2] + events[1::2]]
    threads = [threading.Thread(target=deliver, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert (count(db, UsageSession), count(db, GatewayEvent)) == (5, 20)
    for number in range(5):
        session = snapshot(db, f"s-{number}")
        assert session[5:] == (
            NOW, NOW + timedelta(seconds=100), 100_000, 60_000, 40_000, "badge_out", 4 * number + 4
        )  # fmt: skip


def test_a_session_records_its_supervisor(db: Session, workshop: Workshop) -> None:
    started = msgspec.structs.replace(session_events("s-sup")[0], supervisor_id=workshop.trainer)
    assert ingest(db, workshop.gateway, started, NOW).ok
    # A later event naming nobody (or somebody else) does not change it.
    running = msgspec.structs.replace(session_events("s-sup")[1], supervisor_id=workshop.bob)
    assert ingest(db, workshop.gateway, running, NOW).ok
    assert snapshot(db, "s-sup")[2] == workshop.alice
    db.expire_all()
    session = db.scalars(sa.select(UsageSession).where(UsageSession.session_id == "s-sup")).one()
    assert session.supervisor_id == workshop.trainer


def test_an_unknown_supervisor_is_left_out(db: Session, workshop: Workshop) -> None:
    started = msgspec.structs.replace(session_events("s-sup-2")[0], supervisor_id=9999)
    assert ingest(db, workshop.gateway, started, NOW).ok
    session = db.scalars(sa.select(UsageSession).where(UsageSession.session_id == "s-sup-2")).one()
    assert session.supervisor_id is None


def test_energy_is_the_greatest_total_reported_in_any_order(db: Session, workshop: Workshop) -> None:
    events = session_events("s-energy")
    with_energy = [
        events[0],  # no voltage known yet at the start: no energy
        msgspec.structs.replace(events[1], energy_wh=1.5),
        msgspec.structs.replace(events[2], energy_wh=42.25),
        msgspec.structs.replace(events[3], energy_wh=45.0),
    ]
    for event in [with_energy[3], with_energy[0], with_energy[2], with_energy[1]]:
        assert ingest(db, workshop.gateway, event, NOW).ok
    db.expire_all()
    session = db.scalars(sa.select(UsageSession).where(UsageSession.session_id == "s-energy")).one()
    assert session.energy_wh == 45.0


def test_a_session_without_a_voltage_has_no_energy(db: Session, workshop: Workshop) -> None:
    for event in session_events("s-no-energy"):
        assert ingest(db, workshop.gateway, event, NOW).ok
    session = db.scalars(sa.select(UsageSession).where(UsageSession.session_id == "s-no-energy")).one()
    assert session.energy_wh is None

"""Duplicated and reordered deliveries of usage events: the server applies each one once.

Three ways events come twice or out of order, as a broker, a reconnection or a cluster
deliver them:

* a network that duplicates every PUBLISH of the gateway's events (a retransmission
  with the DUP flag): every event reaches the server twice, live;
* a network that holds a session's events back and then delivers them newest first,
  each twice: ``session_ended`` reaches the server before ``session_started``;
* copies of every journaled event, published straight to the broker by another client,
  reversed and shuffled, long after they were applied.
"""

from __future__ import annotations

import random

import sqlalchemy as sa

from protocol.messages import encode
from server.db import make_engine, table
from server.models import Gateway, GatewayEvent, UsageSession
from tests.faults.conftest import Stack
from tests.faults.harness import (
    AMINA,
    LUCAS,
    AckSpy,
    assert_billed_exactly_once,
    assert_relays_safe,
    billed,
    journal_events,
    publish_raw,
    wait_until,
)


def _is_events(name: str) -> bool:
    return name.endswith("/events")


def test_every_event_duplicated_by_the_network(shared_stack: Stack) -> None:
    proxy = shared_stack.proxy(duplicate_topics=_is_events)
    gateway = shared_stack.gateway(2, through=proxy)
    gateway.wait_connected()
    spy = AckSpy(shared_stack.broker.url, gateway.id)
    try:
        first, second = gateway.machines
        gateway.grant(first, AMINA)
        gateway.grant(second, LUCAS)
        gateway.run_for(first, 0.3)
        gateway.run_for(second, 0.2)
        gateway.run_for(first, 0.2)
        gateway.badge_out(first, AMINA)
        gateway.badge_out(second, LUCAS)
        books = assert_billed_exactly_once(gateway, shared_stack.database_url, sessions=2)
        events = len(books.sensed.seqs)
        assert proxy.counts["duplicated"] == events, "the network duplicated every event"
        assert spy.wait(2 * events, 10), f"each copy acknowledged: {spy.count} acks for {events} events"
    finally:
        spy.close()
    assert books.billed.seqs == books.sensed.seqs, "each (gateway, seq) applied once"
    assert_relays_safe(gateway)


def test_a_session_delivered_newest_first_and_twice(shared_stack: Stack) -> None:
    proxy = shared_stack.proxy()
    gateway = shared_stack.gateway(1, through=proxy)
    gateway.wait_connected()
    machine = gateway.machines[0]

    proxy.hold_topics = _is_events  # from now on, events are held back by the network
    gateway.grant(machine, AMINA)
    gateway.run_for(machine, 0.3)
    gateway.run_for(machine, 0.2)
    gateway.badge_out(machine, AMINA)
    wait_until("the session's 6 events to be held", lambda: proxy.counts["held"] >= 6, 5)
    assert billed(shared_stack.database_url, gateway.id).sessions == {}, "nothing reached the server"

    proxy.hold_topics = None
    assert proxy.release(reverse=True, copies=2) == 6  # session_ended first, each twice
    books = assert_billed_exactly_once(gateway, shared_stack.database_url, sessions=1)
    (session_id,) = books.sensed.sessions
    (totals,) = books.billed.sessions.values()
    assert totals.end_reason == "badge_out"
    assert books.billed.seqs == books.sensed.seqs
    # The session starts when its first event says, whatever order the events came in.
    events = [event for event, _ in journal_events(gateway.journal_path)]
    started_ms = min(event.at_ms for event in events)
    ended_ms = max(event.at_ms for event in events)
    engine = make_engine(shared_stack.database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.select(UsageSession.started_at, UsageSession.ended_at).where(
                    UsageSession.session_id == session_id
                )
            ).one()
    finally:
        engine.dispose()
    assert round(row.started_at.timestamp() * 1000) == started_ms
    assert row.ended_at is not None
    assert round(row.ended_at.timestamp() * 1000) == ended_ms
    assert_relays_safe(gateway)


def test_journaled_events_published_again_reversed_and_shuffled(shared_stack: Stack) -> None:
    gateway = shared_stack.gateway(2)
    gateway.wait_connected()
    first, second = gateway.machines
    gateway.grant(first, AMINA)
    gateway.run_for(first, 0.3)
    gateway.grant(second, LUCAS)
    gateway.run_for(second, 0.2)
    gateway.badge_out(first, AMINA)
    gateway.run_for(second, 0.2)
    gateway.badge_out(second, LUCAS)
    before = assert_billed_exactly_once(gateway, shared_stack.database_url, sessions=2)
    rows_before = _session_rows(shared_stack.database_url, gateway.id)

    payloads = [encode(event) for event, _ in journal_events(gateway.journal_path)]
    shuffled = payloads * 2
    random.Random(7).shuffle(shuffled)
    spy = AckSpy(shared_stack.broker.url, gateway.id)
    try:
        sent = publish_raw(shared_stack.broker.url, gateway.id, [*reversed(payloads), *shuffled])
        assert spy.wait(sent, 15), f"every copy acknowledged: {spy.count} of {sent}"
        assert all(ack.ok for ack in spy.acks)
    finally:
        spy.close()

    after = assert_billed_exactly_once(gateway, shared_stack.database_url, sessions=2)
    assert after.billed.sessions == before.billed.sessions
    assert _session_rows(shared_stack.database_url, gateway.id) == rows_before, "nothing changed"
    assert after.billed.seqs == before.sensed.seqs, "each (gateway, seq) applied once"


def _session_rows(database_url: str, gateway: str) -> list[tuple[object, ...]]:
    """Every column of the gateway's usage sessions, and how many of its events were applied."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            gateway_id = connection.scalar(sa.select(Gateway.id).where(Gateway.slug == gateway))
            sessions = connection.execute(
                sa.select(table(UsageSession))
                .where(UsageSession.gateway_id == gateway_id)
                .order_by(UsageSession.session_id)
            ).all()
            applied = connection.scalar(
                sa.select(sa.func.count())
                .select_from(GatewayEvent)
                .where(GatewayEvent.gateway_id == gateway_id)
            )
    finally:
        engine.dispose()
    return [tuple(row) for row in sessions] + [("applied", applied)]

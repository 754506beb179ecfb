"""The server answers a gateway through the real broker, and nothing a gateway sends can stop it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from protocol.messages import (
    AccessReply,
    EventAck,
    EventKind,
    GatewayState,
    GatewayStatus,
    Reason,
    UsageEvent,
    decode,
)
from protocol.topics import Channel, topic
from server.clock import utc_now
from server.db import SessionFactory
from server.models import AccessDecision, Gateway, GatewayEvent, UsageSession
from server.models import GatewayState as KnownState
from server.mqtt import MqttService
from server.mqtt.handlers import Handlers, Outgoing
from server.settings import Settings
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import TIMEOUT_S, FakeGateway
from tests.services import Mosquitto


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_an_access_request_gets_its_reply(
    gateway: FakeGateway, workshop: Workshop, session_factory: SessionFactory
) -> None:
    granted = gateway.ask("sewing-1", workshop.alice_badge)
    assert (granted.granted, granted.reason, granted.member_id) == (True, Reason.GRANTED, workshop.alice)
    assert granted.member_name == "Alice Martin"
    refused = gateway.ask("sewing-1", workshop.bob_badge)
    assert (refused.granted, refused.reason) == (False, Reason.NOT_CERTIFIED)
    assert refused.message == "You are not certified for Industrial sewing."
    with session_factory() as db:
        assert db.scalars(sa.select(AccessDecision.reason).order_by(AccessDecision.id)).all() == [
            "granted",
            "not_certified",
        ]


def test_events_sent_twice_are_acked_twice_and_applied_once(
    gateway: FakeGateway, workshop: Workshop, session_factory: SessionFactory
) -> None:
    t0 = now_ms()
    events = [
        UsageEvent(seq=1, session_id="gw-s1", machine="sewing-1", kind=EventKind.SESSION_STARTED, at_ms=t0,
                   badge=workshop.alice_badge),
        UsageEvent(seq=2, session_id="gw-s1", machine="sewing-1", kind=EventKind.RUNNING_STARTED,
                   at_ms=t0 + 1000, unlocked_ms=1000, idle_ms=1000),
        UsageEvent(seq=3, session_id="gw-s1", machine="sewing-1", kind=EventKind.SESSION_ENDED,
                   at_ms=t0 + 5000, unlocked_ms=5000, running_ms=4000, idle_ms=1000, end_reason="badge_out"),
    ]  # fmt: skip
    for event in events + events:
        gateway.event(event)
    acks = [gateway.next_ack() for _ in range(6)]
    assert acks == [EventAck(seq=seq) for seq in (1, 2, 3, 1, 2, 3)]
    with session_factory() as db:
        session = db.scalars(sa.select(UsageSession)).one()
        assert (session.session_id, session.member_id, session.running_ms) == ("gw-s1", workshop.alice, 4000)
        assert session.ended_at is not None
        assert db.scalar(sa.select(sa.func.count()).select_from(GatewayEvent)) == 3


def test_an_event_for_an_unknown_machine_is_refused(gateway: FakeGateway) -> None:
    gateway.event(
        UsageEvent(seq=7, session_id="x", machine="loom-9", kind=EventKind.SESSION_STARTED, at_ms=1)
    )
    assert gateway.next_ack() == EventAck(seq=7, ok=False, error="unknown machine loom-9")


def test_garbage_is_logged_and_the_service_keeps_answering(
    broker: Mosquitto, gateway: FakeGateway, workshop: Workshop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    requests = topic(workshop.site, workshop.gateway, Channel.ACCESS_REQUEST)
    events = topic(workshop.site, workshop.gateway, Channel.EVENTS)
    # Not answered: nothing to answer to.
    gateway.publish_raw(requests, b"\x00\xffnot json at all")
    gateway.publish_raw(requests, b"")
    gateway.publish_raw(requests, b"[1, 2, 3]")
    gateway.publish_raw(
        requests, json.dumps({"request_id": "big", "machine": "sewing-1", "pad": "x" * 5000}).encode()
    )
    gateway.publish_raw(f"atelier/v1/{workshop.site}/Not_An_Id/access/request", b"{}")
    gateway.publish_raw(topic(workshop.site, workshop.gateway, Channel.STATUS), b"{bad status")
    gateway.publish_raw(topic(workshop.site, workshop.gateway, Channel.TELEMETRY), b"{}", qos=0)
    gateway.publish_raw(events, b'{"seq": "one"}')
    # Answered: enough can be read to tell the gateway what is wrong.
    salvageable = {"request_id": "r-bad", "machine": "sewing-1", "badge": "not hex", "sent_at_ms": 1}
    gateway.publish_raw(requests, json.dumps(salvageable).encode())
    bad_event = {"seq": 41, "session_id": "s", "machine": "sewing-1", "kind": "exploded", "at_ms": 1}
    gateway.publish_raw(events, json.dumps(bad_event).encode())

    stranger = FakeGateway(broker.url, workshop.site, "gw-nowhere")
    try:
        unknown = stranger.ask("sewing-1", workshop.alice_badge)
        assert (unknown.granted, unknown.reason) == (False, Reason.UNKNOWN_GATEWAY)
    finally:
        stranger.close()

    # The reply and the ack come from the two lanes, in either order.
    answers = dict([gateway.next(), gateway.next()])
    bad_request = decode(AccessReply, answers[topic(workshop.site, workshop.gateway, Channel.ACCESS_REPLY)])
    assert (bad_request.request_id, bad_request.machine, bad_request.reason) == (
        "r-bad",
        "sewing-1",
        Reason.BAD_REQUEST,
    )
    assert not bad_request.granted
    assert "badge" in bad_request.message
    bad_ack = decode(EventAck, answers[topic(workshop.site, workshop.gateway, Channel.EVENTS_ACK)])
    assert (bad_ack.seq, bad_ack.ok) == (41, False)
    assert bad_ack.error is not None
    assert "kind" in bad_ack.error
    # ... and nothing else came before the answer to a good request.
    assert gateway.ask("sewing-1", workshop.alice_badge).granted

    logged = caplog.text
    assert f"bad access request on {requests}" in logged
    assert "over 4096" in logged
    assert "Not_An_Id" in logged
    assert "bad status on" in logged
    assert "bad telemetry on" in logged
    assert f"bad usage event on {events}" in logged


def test_an_expired_request_is_dropped(gateway: FakeGateway, workshop: Workshop, settings: Settings) -> None:
    gateway.request(
        "sewing-1", workshop.alice_badge, expires_in_ms=-settings.request_clock_tolerance_ms - 2000
    )
    # A request that expired within the tolerance (clock skew) is still answered.
    late = gateway.request("sewing-1", workshop.alice_badge, expires_in_ms=-1000)
    assert gateway.next_reply().request_id == late
    assert gateway.ask("sewing-1", workshop.alice_badge).granted


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> bool:
    """Whether ``condition`` became true within ``timeout`` seconds, checking it every 20 ms."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def known(session_factory: SessionFactory, slug: str) -> tuple[KnownState, int, str]:
    with session_factory() as db:
        found = db.scalars(sa.select(Gateway).where(Gateway.slug == slug)).one()
        return found.state, found.boot, found.software


def test_gateway_status_and_a_stale_last_will(
    gateway: FakeGateway, workshop: Workshop, session_factory: SessionFactory
) -> None:
    seqs = iter(range(1, 100))

    def status(state: GatewayState, boot: int) -> None:
        gateway.status(GatewayStatus(state=state, boot=boot, software="atelier 0.1", at_ms=now_ms()))
        # Statuses and events share the ingest lane, handled in order: the ack of an event
        # sent after the status proves the status was handled (an access request would not:
        # it is answered on the other lane, maybe first).
        seq = next(seqs)
        gateway.event(
            UsageEvent(seq=seq, session_id="x", machine="loom-9", kind=EventKind.SESSION_STARTED, at_ms=1)
        )
        assert gateway.next_ack().seq == seq

    status(GatewayState.ONLINE, 3)
    assert known(session_factory, workshop.gateway) == (KnownState.ONLINE, 3, "atelier 0.1")
    with session_factory() as db:
        seen = db.scalar(sa.select(Gateway.last_seen_at).where(Gateway.slug == workshop.gateway))
    assert seen is not None
    status(GatewayState.LOST, 2)  # the will of boot 2, delivered after boot 3 came online
    assert known(session_factory, workshop.gateway)[:2] == (KnownState.ONLINE, 3)
    status(GatewayState.LOST, 3)
    assert known(session_factory, workshop.gateway)[:2] == (KnownState.LOST, 3)
    status(GatewayState.ONLINE, 4)
    status(GatewayState.OFFLINE, 4)
    assert known(session_factory, workshop.gateway)[:2] == (KnownState.OFFLINE, 4)


def test_retained_status_is_read_at_start_and_unknown_gateways_ignored(
    broker: Mosquitto,
    settings: Settings,
    workshop: Workshop,
    session_factory: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fablab = FakeGateway(broker.url, workshop.site, workshop.other_gateway)
    stranger = FakeGateway(broker.url, workshop.site, "gw-stranger")
    service = MqttService(settings, session_factory)
    try:
        fablab.status(GatewayStatus(state=GatewayState.ONLINE, boot=9, at_ms=now_ms()))
        stranger.status(GatewayStatus(state=GatewayState.ONLINE, boot=1, at_ms=now_ms()))
        service.start()
        assert service.wait_until_ready(TIMEOUT_S)
        # Retained statuses arrive on the ingest lane after it subscribed: wait for their effect.
        assert wait_until(
            lambda: known(session_factory, workshop.other_gateway)[:2] == (KnownState.ONLINE, 9)
        )
        assert wait_until(lambda: "status from unregistered gateway gw-stranger" in caplog.text)
    finally:
        service.stop()
        for fake in (fablab, stranger):  # leave no retained status behind
            fake.publish_raw(topic(workshop.site, fake.slug, Channel.STATUS), b"", retain=True)
            fake.close()


class FlakyHandlers(Handlers):
    """Handlers that fail like a server bug would, on a payload that asks for it."""

    def handle(self, topic_name: str, payload: bytes, *, retained: bool = False) -> Outgoing | None:
        if b"boom" in payload:
            raise RuntimeError("a bug in a handler")
        return super().handle(topic_name, payload, retained=retained)


def test_a_failing_handler_does_not_stop_the_service(
    *,
    service: MqttService,
    gateway: FakeGateway,
    workshop: Workshop,
    settings: Settings,
    session_factory: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service.handlers = FlakyHandlers(
        settings.site, session_factory, utc_now, settings.request_clock_tolerance_ms
    )
    requests = topic(workshop.site, workshop.gateway, Channel.ACCESS_REQUEST)
    gateway.publish_raw(requests, b'{"boom": 1}')
    assert gateway.ask("sewing-1", workshop.alice_badge).granted
    assert f"failed to handle a message on '{requests}'" in caplog.text
    assert "a bug in a handler" in caplog.text


@pytest.fixture
def shared_services(
    settings: Settings, session_factory: SessionFactory, workshop: Workshop
) -> Iterator[list[MqttService]]:
    shared = settings.model_copy(update={"mqtt_shared_group": f"servers-{workshop.site}"})
    services = [MqttService(shared, session_factory) for _ in range(2)]
    for service in services:
        service.start()
    try:
        for service in services:
            assert service.wait_until_ready(TIMEOUT_S)
        yield services
    finally:
        for service in services:
            service.stop()


def test_servers_sharing_the_subscription_answer_each_request(
    shared_services: list[MqttService], broker: Mosquitto, workshop: Workshop
) -> None:
    filters = [filter_ for filter_, _ in shared_services[0].subscriptions()]
    assert f"$share/servers-{workshop.site}/atelier/v1/{workshop.site}/+/access/request" in filters
    gateway = FakeGateway(broker.url, workshop.site, workshop.gateway)
    try:
        sent = [gateway.request("sewing-1", workshop.alice_badge) for _ in range(20)]
        replies = [gateway.next_reply() for _ in sent]
        assert sorted(reply.request_id for reply in replies) == sorted(sent)
        assert all(reply.granted for reply in replies)
    finally:
        gateway.close()

"""The gateway's MQTT link against a real Mosquitto: status, last will, what it lets through."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from controller.clock import ManualClock
from controller.link import Link
from protocol.messages import (
    AccessReply,
    CertificationLevel,
    CertifyReply,
    CertifyRequest,
    Command,
    CommandAction,
    EventAck,
    GatewayState,
    Reason,
)
from protocol.mqtt import BrokerURL
from protocol.topics import Channel
from tests.controller.responder import Responder, retained_status
from tests.services import Mosquitto

GATEWAY = "gw-link"


class Recorder:
    """A LinkListener that keeps what it is handed."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.connections = 0
        self.replies: list[AccessReply] = []
        self.certify_replies: list[CertifyReply] = []
        self.acks: list[EventAck] = []
        self.commands: list[Command] = []
        self.allowlists: list[bytes] = []

    def on_connected(self) -> None:
        with self.changed:
            self.connections += 1
            self.changed.notify_all()

    def on_reply(self, reply: AccessReply) -> None:
        with self.changed:
            self.replies.append(reply)
            self.changed.notify_all()

    def on_certify_reply(self, reply: CertifyReply) -> None:
        with self.changed:
            self.certify_replies.append(reply)
            self.changed.notify_all()

    def on_ack(self, ack: EventAck) -> None:
        with self.changed:
            self.acks.append(ack)
            self.changed.notify_all()

    def on_command(self, command: Command) -> None:
        with self.changed:
            self.commands.append(command)
            self.changed.notify_all()

    def on_allowlist(self, payload: bytes) -> None:
        with self.changed:
            self.allowlists.append(payload)
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> bool:
        with self.changed:
            return bool(self.changed.wait_for(predicate, timeout))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def link(broker: Mosquitto, site_id: str, recorder: Recorder, clock: ManualClock) -> Iterator[Link]:
    link = Link(
        broker=BrokerURL.parse(broker.url),
        site=site_id,
        gateway_id=GATEWAY,
        boot=4,
        machines=["sew-1", "print-1"],
        clock=clock,
        listener=recorder,
    )
    link.start()
    assert link.wait_connected(10)
    assert recorder.wait_for(lambda: recorder.connections == 1)
    yield link
    link.stop()


def command(clock: ManualClock, command_id: str, *, expires_in_ms: int = 5000) -> Command:
    now = clock.wall_ms()
    return Command(
        command_id=command_id,
        action=CommandAction.LOCK,
        machine="sew-1",
        issued_at_ms=now,
        expires_at_ms=now + expires_in_ms,
    )


def test_the_birth_status_is_retained(link: Link, broker: Mosquitto, site_id: str) -> None:
    status = retained_status(broker.url, site_id, GATEWAY)

    assert status is not None
    assert status.state is GatewayState.ONLINE
    assert status.boot == 4
    assert status.machines == ["sew-1", "print-1"]
    assert status.software.startswith("atelier-access")


def test_a_clean_stop_leaves_offline_retained(
    broker: Mosquitto, site_id: str, recorder: Recorder, clock: ManualClock
) -> None:
    link = Link(
        broker=BrokerURL.parse(broker.url),
        site=site_id,
        gateway_id="gw-stops",
        boot=1,
        machines=["sew-1"],
        clock=clock,
        listener=recorder,
    )
    link.start()
    assert link.wait_connected(10)
    link.stop()

    status = retained_status(broker.url, site_id, "gw-stops")
    assert status is not None
    assert status.state is GatewayState.OFFLINE
    assert status.boot == 1


def test_the_last_will_says_lost_then_the_link_comes_back(
    link: Link, responder: Responder, recorder: Recorder
) -> None:
    assert responder.wait_for(lambda seen: any(s.state is GatewayState.ONLINE for s in seen.statuses))
    link.drop_connection()

    assert responder.wait_for(lambda seen: seen.statuses[-1].state is GatewayState.LOST)
    lost = responder.seen.statuses[-1]
    assert lost.boot == 4, "the will carries this boot, so a stale one cannot mark a newer boot lost"
    assert responder.wait_for(lambda seen: seen.statuses[-1].state is GatewayState.ONLINE)
    assert recorder.wait_for(lambda: recorder.connections == 2), "subscriptions renewed on reconnect"
    responder.send(GATEWAY, Channel.EVENTS_ACK, EventAck(seq=1))
    assert recorder.wait_for(lambda: [a.seq for a in recorder.acks] == [1])


def test_replies_acks_and_commands_are_handed_over(
    link: Link, responder: Responder, recorder: Recorder, clock: ManualClock
) -> None:
    reply = AccessReply(
        request_id="r1", machine="sew-1", badge="04A1B2C3", granted=True, reason=Reason.GRANTED
    )
    certified = CertifyReply(
        request_id="c1", machine="sew-1", member_badge="0E1F0002", certified=True, reason=Reason.GRANTED
    )
    responder.send(GATEWAY, Channel.ACCESS_REPLY, reply)
    responder.send(GATEWAY, Channel.CERTIFY_REPLY, certified)
    responder.send(GATEWAY, Channel.EVENTS_ACK, EventAck(seq=3))
    responder.send(GATEWAY, Channel.COMMAND, command(clock, "c1"))

    assert recorder.wait_for(
        lambda: recorder.replies and recorder.certify_replies and recorder.acks and recorder.commands
    )
    assert recorder.replies == [reply]
    assert recorder.certify_replies == [certified]
    assert recorder.acks == [EventAck(seq=3)]
    assert recorder.commands[0].command_id == "c1"


def test_malformed_payloads_are_dropped(
    link: Link, responder: Responder, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    channels = (Channel.ACCESS_REPLY, Channel.CERTIFY_REPLY, Channel.EVENTS_ACK, Channel.COMMAND)
    for channel in channels:
        for payload in (b"not json", b"{}", b"[1, 2]", b"\xff\xfe", b'{"seq": -1}', b"{" * 5000):
            responder.send(GATEWAY, channel, payload)
    responder.send(GATEWAY, Channel.EVENTS_ACK, EventAck(seq=9))  # a good one after the bad ones

    assert recorder.wait_for(lambda: recorder.acks)
    assert recorder.acks == [EventAck(seq=9)]
    assert recorder.replies == []
    assert recorder.certify_replies == []
    assert recorder.commands == []
    assert link.connected
    dropped = [r for r in caplog.records if "dropped a malformed message" in r.getMessage()]
    assert len(dropped) == 24


def test_late_and_repeated_commands_are_dropped(
    link: Link, responder: Responder, recorder: Recorder, clock: ManualClock
) -> None:
    responder.send(GATEWAY, Channel.COMMAND, command(clock, "c1"))
    responder.send(GATEWAY, Channel.COMMAND, command(clock, "c1"))  # repeated
    responder.send(GATEWAY, Channel.COMMAND, command(clock, "c2", expires_in_ms=0))  # expired on arrival
    responder.send(GATEWAY, Channel.COMMAND, command(clock, "c3"))

    assert recorder.wait_for(lambda: len(recorder.commands) >= 2)
    assert [c.command_id for c in recorder.commands] == ["c1", "c3"]


def test_a_certification_is_published_on_the_gateways_certify_request_topic(
    link: Link, responder: Responder, clock: ManualClock
) -> None:
    now = clock.wall_ms()
    request = CertifyRequest(
        request_id="c-1",
        machine="sew-1",
        trainer_badge="7EAC4E55",
        member_badge="0E1F0002",
        level=CertificationLevel.SUPERVISED,
        sent_at_ms=now,
        expires_at_ms=now + 500,
    )
    assert link.publish_certify(request)

    assert responder.wait_for(lambda seen: seen.certify_requests == [request])

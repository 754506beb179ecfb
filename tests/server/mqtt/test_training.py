"""Training through the real broker: supervised use, the trainer flag, and certification at the machine."""

from __future__ import annotations

import json
import logging
import time

import pytest
import sqlalchemy as sa

from protocol.messages import CertificationLevel, EventKind, Reason, UsageEvent
from protocol.topics import Channel, topic
from server.db import SessionFactory
from server.models import Certification, CertificationEvent, GrantedVia, UsageSession
from server.mqtt import MqttService
from server.mqtt.service import DECISION_CHANNELS
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import FakeGateway
from tests.services import Mosquitto


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_certify_requests_are_on_the_decision_lane(service: MqttService, workshop: Workshop) -> None:
    assert Channel.CERTIFY_REQUEST in DECISION_CHANNELS
    filters = [filter_ for filter_, _ in service.subscriptions()]
    assert f"atelier/v1/{workshop.site}/+/certify/request" in filters


def test_a_trainer_certifies_a_member_at_the_machine(
    gateway: FakeGateway, workshop: Workshop, session_factory: SessionFactory
) -> None:
    # Bob is refused; the trainer badges (told she is a trainer here), Bob badges, she confirms.
    assert gateway.ask("sewing-1", workshop.bob_badge).reason is Reason.NOT_CERTIFIED
    trainer = gateway.ask("sewing-1", workshop.trainer_badge)
    assert (trainer.granted, trainer.trainer) == (True, True)
    reply = gateway.ask_certify("sewing-1", workshop.trainer_badge, workshop.bob_badge)
    assert (reply.certified, reply.reason, reply.skills, reply.member_id) == (
        True,
        Reason.GRANTED,
        ["industrial-sewing"],
        workshop.bob,
    )
    assert reply.member_name == "Bob Durand"
    # Recorded as a certification from the web is, but "via machine".
    with session_factory() as db:
        certification = db.scalars(
            sa.select(Certification).where(Certification.member_id == workshop.bob)
        ).one()
        assert (certification.granted_by_id, certification.granted_via, certification.level) == (
            workshop.trainer,
            GrantedVia.MACHINE,
            CertificationLevel.AUTONOMOUS,
        )
        event = db.scalars(
            sa.select(CertificationEvent).where(CertificationEvent.certification_id == certification.id)
        ).one()
        assert (event.kind.value, event.actor_id, event.via) == ("granted", workshop.trainer, "machine")
    # Bob's next tap is granted.
    assert gateway.ask("sewing-1", workshop.bob_badge).granted


def test_refusals_at_the_machine_say_why(
    gateway: FakeGateway, workshop: Workshop, session_factory: SessionFactory
) -> None:
    not_a_trainer = gateway.ask_certify("sewing-1", workshop.alice_badge, workshop.bob_badge)
    assert (not_a_trainer.certified, not_a_trainer.reason) == (False, Reason.NOT_A_TRAINER)
    self_certification = gateway.ask_certify("sewing-1", workshop.trainer_badge, workshop.trainer_badge)
    assert self_certification.reason is Reason.SELF_CERTIFICATION
    suspended = gateway.ask_certify("sewing-1", workshop.trainer_badge, workshop.carol_badge)
    assert suspended.reason is Reason.MEMBER_INACTIVE
    unknown = gateway.ask_certify("sewing-1", workshop.trainer_badge, "FFFF0000")
    assert unknown.reason is Reason.UNKNOWN_BADGE
    with session_factory() as db:
        assert (
            db.scalar(
                sa.select(sa.func.count())
                .select_from(Certification)
                .where(Certification.member_id == workshop.bob)
            )
            == 0
        )


def test_supervised_use_through_the_broker(
    gateway: FakeGateway, workshop: Workshop, session_factory: SessionFactory
) -> None:
    alone = gateway.ask("overlocker-1", workshop.alice_badge)
    assert (alone.granted, alone.reason) == (False, Reason.SUPERVISION_REQUIRED)
    assert gateway.ask("overlocker-1", workshop.trainer_badge).trainer
    supervised = gateway.ask("overlocker-1", workshop.alice_badge, supervisor_badge=workshop.trainer_badge)
    assert (supervised.granted, supervised.supervisor_id) == (True, workshop.trainer)
    # The gateway reports the session with its supervisor; the server records it.
    gateway.event(
        UsageEvent(
            seq=1,
            session_id="sup-1",
            machine="overlocker-1",
            kind=EventKind.SESSION_STARTED,
            at_ms=now_ms(),
            badge=workshop.alice_badge,
            member_id=workshop.alice,
            supervisor_id=supervised.supervisor_id,
        )
    )
    assert gateway.next_ack().ok
    with session_factory() as db:
        session = db.scalars(sa.select(UsageSession).where(UsageSession.session_id == "sup-1")).one()
        assert (session.member_id, session.supervisor_id) == (workshop.alice, workshop.trainer)


def test_bad_certify_requests_are_logged_and_answered_when_possible(
    broker: Mosquitto, gateway: FakeGateway, workshop: Workshop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    requests = topic(workshop.site, workshop.gateway, Channel.CERTIFY_REQUEST)
    gateway.publish_raw(requests, b"not json")  # unanswerable: no request id
    salvageable = {
        "request_id": "c-bad",
        "machine": "sewing-1",
        "trainer_badge": "zz",
        "member_badge": "B0B00001",
    }
    gateway.publish_raw(requests, json.dumps(salvageable).encode())
    bad = gateway.next_certify_reply()
    assert (bad.request_id, bad.certified, bad.reason, bad.member_badge) == (
        "c-bad",
        False,
        Reason.BAD_REQUEST,
        "B0B00001",
    )
    assert "trainer_badge" in bad.message
    # An expired request is dropped: nobody waits for it, and nothing is granted.
    gateway.certify("sewing-1", workshop.trainer_badge, workshop.bob_badge, expires_in_ms=-60_000)
    # A gateway nobody registered hears so.
    stranger = FakeGateway(broker.url, workshop.site, "gw-nowhere")
    try:
        unknown = stranger.ask_certify("sewing-1", workshop.trainer_badge, workshop.bob_badge)
        assert (unknown.certified, unknown.reason) == (False, Reason.UNKNOWN_GATEWAY)
    finally:
        stranger.close()
    good = gateway.ask_certify("sewing-1", workshop.trainer_badge, workshop.alice_badge)
    assert (good.certified, good.skills) == (True, [])  # Alice holds sewing already
    assert f"bad certify request on {requests}" in caplog.text
    assert "dropped certify request" in caplog.text

"""Training through the whole path: the real gateway daemon, a real Mosquitto, the real server service.

On one sewing machine: a member certified "supervised" is refused alone and let in
right after a trainer badged (the session records its supervisor); then the trainer
certifies an untrained member at the machine (trainer's badge, member's badge,
trainer's confirming tap), who is let in at once, and the certification is recorded
as one from the web would be, ``via machine``. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.clock import ManualClock
from controller.gateway import Gateway
from protocol.messages import CertificationLevel, MachineStateName
from server import workshop
from server.db import SessionFactory, make_engine, make_session_factory, upgrade_database
from server.models import AccessDecision, Certification, CertificationEvent, GrantedVia, UsageSession
from server.mqtt import MqttService
from server.settings import Settings
from tests.controller.support import gateway_config
from tests.services import Mosquitto

TRAINER = "04AAAA0001"
SUPERVISED = "04BBBB0002"
NEWCOMER = "04CCCC0003"

LOCKED, UNLOCKED = MachineStateName.LOCKED, MachineStateName.UNLOCKED


@pytest.fixture
def server(
    broker: Mosquitto, database_url: str, site_id: str
) -> Iterator[tuple[SessionFactory, dict[str, int]]]:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with factory() as db:
        workshop.add_skill(db, "industrial-sewing", "Industrial sewing")
        workshop.add_gateway(db, "gw-1", site=site_id)
        workshop.add_machine(
            db,
            "sew-1",
            "Juki DDL-8700",
            machine_class="sewing",
            gateway="gw-1",
            required_skills=["industrial-sewing"],
        )
        tess = workshop.add_member(db, "Tess Trainer", badge=TRAINER).id
        sam = workshop.add_member(db, "Sam Beginner", badge=SUPERVISED).id
        chloe = workshop.add_member(db, "Chloé Bernard", badge=NEWCOMER).id
        workshop.grant_certification(db, tess, "industrial-sewing", level=CertificationLevel.TRAINER)
        workshop.grant_certification(
            db, sam, "industrial-sewing", level=CertificationLevel.SUPERVISED, granted_by=tess
        )
        db.commit()
    service = MqttService(Settings(database_url=database_url, mqtt_url=broker.url, site=site_id), factory)
    service.start()
    assert service.wait_until_ready(10), "the server service subscribed"
    try:
        yield factory, {"tess": tess, "sam": sam, "chloe": chloe}
    finally:
        service.stop()
        engine.dispose()


def _reasons(factory: SessionFactory) -> list[str]:
    with factory() as db:
        return list(db.scalars(sa.select(AccessDecision.reason).order_by(AccessDecision.id)))


def test_supervised_use_and_certification_at_the_machine(
    broker: Mosquitto, server: tuple[SessionFactory, dict[str, int]], site_id: str, tmp_path: Path
) -> None:
    factory, people = server
    clock = ManualClock(wall_origin_ms=time.time_ns() // 1_000_000)
    config = gateway_config(broker.url, site_id, tmp_path)
    with Gateway(config, clock=clock) as gateway:
        assert gateway.wait_connected(10)
        sewing = gateway.machines["sew-1"]

        # Alone, the supervised member is refused, and told why.
        sewing.tap(SUPERVISED)
        assert gateway.wait_for(
            lambda: _reasons(factory) == ["supervision_required"] and sewing.state is LOCKED, 5
        )
        assert not sewing.is_on

        # The trainer badges; the member badges next: the machine is handed over, supervised.
        sewing.tap(TRAINER)
        assert gateway.wait_for(lambda: sewing.state is UNLOCKED and sewing.trainer is not None, 5)
        sewing.tap(SUPERVISED)
        assert gateway.wait_for(lambda: sewing.supervisor_id == people["tess"], 5)
        assert sewing.is_on
        sewing.tap(SUPERVISED)  # badge out
        assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)

        # The trainer certifies a newcomer: her badge, the newcomer's (refused), her confirming tap.
        sewing.tap(TRAINER)
        assert gateway.wait_for(lambda: sewing.state is UNLOCKED and sewing.trainer is not None, 5)
        sewing.tap(NEWCOMER)
        assert gateway.wait_for(lambda: sewing.trainee is not None, 5)
        sewing.tap(TRAINER)
        assert gateway.wait_for(
            lambda: sewing.last_certification is not None and sewing.last_certification.certified, 5
        )
        # Certified: the newcomer is let in at once.
        sewing.tap(NEWCOMER)
        assert gateway.wait_for(
            lambda: _reasons(factory)[-1] == "granted" and sewing.session_id is not None, 5
        )
        assert gateway.wait_for(lambda: sewing.machine.member_id == people["chloe"], 5)
        sewing.tap(NEWCOMER)
        assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
        assert gateway.wait_for(lambda: gateway.journal.unacked() == [], 10), "the server acked every event"

    with factory() as db:
        supervised = db.scalars(sa.select(UsageSession).where(UsageSession.member_id == people["sam"])).one()
        assert supervised.supervisor_id == people["tess"]
        assert supervised.ended_at is not None
        chloes = db.scalars(sa.select(Certification).where(Certification.member_id == people["chloe"])).one()
        assert (chloes.granted_by_id, chloes.granted_via, chloes.level) == (
            people["tess"],
            GrantedVia.MACHINE,
            CertificationLevel.AUTONOMOUS,
        )
        granted = db.scalars(
            sa.select(CertificationEvent).where(CertificationEvent.certification_id == chloes.id)
        ).one()
        assert (granted.kind.value, granted.actor_id, granted.via) == ("granted", people["tess"], "machine")
        assert db.scalars(sa.select(UsageSession).where(UsageSession.member_id == people["chloe"])).one()
    reasons = _reasons(factory)
    assert reasons[0] == "supervision_required"
    assert "not_certified" in reasons

"""The server's allowlist as the real gateway daemon takes it: verified, kept up to date, and
deciding for the server while the server is down; the session it opened is billed as usual."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from controller.clock import ManualClock
from controller.gateway import Gateway
from protocol.messages import Command, CommandAction, DecidedBy, MachineStateName, encode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, topic
from server import workshop
from server.db import SessionFactory
from server.models import UsageSession
from server.mqtt import MqttService
from server.settings import Settings
from server.signing import create_key_file, load_signing_key
from tests.controller.support import gateway_config
from tests.server.mqtt.fake_gateway import TIMEOUT_S
from tests.services import Mosquitto

NEWCOMER = "04E5F60718"


def test_the_gateway_decides_from_the_servers_allowlist_while_the_server_is_down(
    broker: Mosquitto, database_url: str, session_factory: SessionFactory, site_id: str, tmp_path: Path
) -> None:
    newcomer = _seed(session_factory, site_id)
    create_key_file(tmp_path / "site.pem")
    key = load_signing_key(tmp_path / "site.pem", "site-1")
    assert key is not None
    settings = Settings(
        database_url=database_url,
        mqtt_url=broker.url,
        site=site_id,
        signing_key_file=tmp_path / "site.pem",
        allowlist_refresh_s=0.2,
    )
    config = gateway_config(broker.url, site_id, tmp_path / "gw", allowlist_keys={"site-1": key.public_text})
    clock = ManualClock(wall_origin_ms=time.time_ns() // 1_000_000)
    server = MqttService(settings, session_factory)
    server.start()
    try:
        assert server.wait_until_ready(TIMEOUT_S)
        with Gateway(config, clock=clock) as gateway:
            assert gateway.wait_connected(TIMEOUT_S)

            def grant_on_sewing() -> bool:
                current = gateway.allowlists.current
                entry = None if current is None else current.entry(NEWCOMER)
                return entry is not None and any(g.machine == "sew-1" for g in entry.grants)

            # Verified and taken: Chloé may use the printer (no skill needed), not the sewing machine.
            assert gateway.wait_for(lambda: gateway.allowlists.current is not None, TIMEOUT_S)
            first = gateway.allowlists.current
            assert first is not None
            assert not grant_on_sewing()
            # Certified on the server: the gateway knows within seconds, from a newer version.
            with session_factory() as db:
                workshop.grant_certification(db, newcomer, "industrial-sewing")
                db.commit()
            assert gateway.wait_for(grant_on_sewing, 5)
            assert gateway.allowlists.current.version > first.version  # type: ignore[union-attr]

            # The server goes down: the gateway decides alone, after the request timeout.
            server.stop()
            sewing = gateway.machines["sew-1"]
            sewing.tap(NEWCOMER)
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.AUTHORISING, 5)
            clock.advance(0.6)
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.UNLOCKED, 5)
            assert sewing.is_on
            sewing.tap(NEWCOMER)  # badge out
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.LOCKED, 5)
            assert [e.decided_by for e in gateway.journal.unacked()][:1] == [DecidedBy.CACHE]

            # Back up: asked to refresh (as a server coming back may), the gateway replays its journal.
            server = MqttService(settings, session_factory)
            server.start()
            assert server.wait_until_ready(TIMEOUT_S)
            _refresh(broker, site_id, "gw-1", clock.wall_ms())
            assert gateway.wait_for(lambda: gateway.journal.unacked() == [], TIMEOUT_S)
    finally:
        server.stop()
    with session_factory() as db:
        session = db.scalars(sa.select(UsageSession)).one()
    assert (session.member_id, session.decided_by, session.clock_suspect) == (newcomer, "cache", False)
    assert session.ended_at is not None


def _seed(session_factory: SessionFactory, site_id: str) -> int:
    """A sewing machine that needs a skill and a printer that needs none, and a newcomer."""
    with session_factory() as db:
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
        workshop.add_machine(db, "print-1", "Prusa MK4", machine_class="printer", gateway="gw-1")
        newcomer = workshop.add_member(db, "Chloé Bernard", badge=NEWCOMER).id
        db.commit()
        return newcomer


def _refresh(broker: Mosquitto, site: str, gateway: str, now_ms: int) -> None:
    url = BrokerURL.parse(broker.url)
    client = make_client(url, f"refresher-{site}")
    client.connect(url.host, url.port)
    client.loop_start()
    try:
        command = Command(
            command_id=f"refresh-{now_ms}",
            action=CommandAction.REFRESH,
            issued_at_ms=now_ms,
            expires_at_ms=now_ms + 60_000,
        )
        client.publish(topic(site, gateway, Channel.COMMAND), encode(command), qos=1).wait_for_publish(
            TIMEOUT_S
        )
    finally:
        client.disconnect()
        client.loop_stop()

"""Server fixtures: a migrated database (SQLite and PostgreSQL) and a small workshop in it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server import workshop as manage
from server.db import SessionFactory, make_engine, make_session_factory, upgrade_database
from server.models import CertificationLevel, MemberStatus

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> SessionFactory:
    return make_session_factory(engine)


@pytest.fixture
def db(session_factory: SessionFactory) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@dataclass(frozen=True)
class Workshop:
    """What :func:`workshop` seeded: slugs, badge UIDs and member ids to test with."""

    site: str
    gateway: str  # drives sewing-1, overlocker-1, cutter-1 and free-1
    other_gateway: str  # drives printer-1
    alice: int  # certified for sewing; for overlocker at the supervised level (with a trainer only)
    bob: int  # no certification
    carol: int  # suspended
    dave: int  # his badge is disabled
    erin: int  # her sewing certification expired; she holds a valid overlocker one
    trainer: int  # a trainer for industrial-sewing and overlocker
    alice_badge: str = "A1B2C3D4"
    bob_badge: str = "B0B00001"
    carol_badge: str = "C0C00001"
    dave_badge: str = "DA7E0001"
    erin_badge: str = "E1E10001"
    trainer_badge: str = "7E550001"


@pytest.fixture
def workshop(db: Session, site_id: str) -> Workshop:
    manage.add_gateway(db, "gw-atelier", site=site_id, name="Atelier gateway")
    manage.add_gateway(db, "gw-fablab", site=site_id, name="Fablab gateway")
    manage.add_skill(db, "industrial-sewing", "Industrial sewing")
    manage.add_skill(db, "overlocker", "Overlocker")
    manage.add_skill(db, "fdm-printer", "FDM printer")
    manage.add_machine(
        db,
        "sewing-1",
        "Juki DDL-8700",
        machine_class="sewing",
        gateway="gw-atelier",
        required_skills=["industrial-sewing"],
    )
    manage.add_machine(
        db,
        "overlocker-1",
        "Juki MO-6714S",
        machine_class="overlocker",
        gateway="gw-atelier",
        required_skills=["industrial-sewing", "overlocker"],
    )
    manage.add_machine(db, "free-1", "Steam iron", machine_class="iron", gateway="gw-atelier")
    manage.add_machine(db, "cutter-1", "Band knife", machine_class="cutter", gateway="gw-atelier")
    manage.set_lockout(db, "cutter-1", True, "blade being replaced")
    manage.add_machine(
        db,
        "printer-1",
        "Prusa MK4",
        machine_class="fdm-printer",
        gateway="gw-fablab",
        required_skills=["fdm-printer"],
    )
    trainer = manage.add_member(db, "Tess Trainer", email="tess@example.org", badge="7E550001", now=NOW).id
    for skill in ("industrial-sewing", "overlocker"):
        manage.grant_certification(db, trainer, skill, level=CertificationLevel.TRAINER, now=NOW)
    alice = manage.add_member(db, "Alice Martin", badge="a1b2c3d4", now=NOW).id
    bob = manage.add_member(db, "Bob Durand", badge="B0B00001", now=NOW).id
    carol = manage.add_member(db, "Carol Petit", badge="C0C00001", status=MemberStatus.SUSPENDED).id
    dave = manage.add_member(db, "Dave Moreau", badge="DA7E0001", now=NOW).id
    manage.set_badge_active(db, "DA7E0001", False)
    erin = manage.add_member(db, "Erin Laurent", badge="E1E10001", now=NOW).id
    for member in (alice, carol, dave):
        manage.grant_certification(db, member, "industrial-sewing", granted_by=trainer, now=NOW)
    manage.grant_certification(
        db,
        alice,
        "overlocker",
        level=CertificationLevel.SUPERVISED,
        expires_at=NOW + timedelta(days=365),
        now=NOW,
    )
    manage.grant_certification(
        db,
        erin,
        "industrial-sewing",
        granted_by=trainer,
        expires_at=NOW - timedelta(days=1),
        now=NOW - timedelta(days=365),
    )
    manage.grant_certification(db, erin, "overlocker", now=NOW)
    db.commit()
    return Workshop(
        site=site_id,
        gateway="gw-atelier",
        other_gateway="gw-fablab",
        alice=alice,
        bob=bob,
        carol=carol,
        dave=dave,
        erin=erin,
        trainer=trainer,
    )

"""Managing the workshop in one call per thing, with errors that say what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session

from server import workshop as manage
from server.models import CertificationLevel
from tests.server.conftest import NOW, Workshop


def test_seed_a_workshop_without_sql(db: Session, site_id: str) -> None:
    gateway = manage.add_gateway(db, "gw-1", site=site_id)
    skill = manage.add_skill(db, "embroidery", "Embroidery", "Multi-needle machine")
    machine = manage.add_machine(
        db,
        "embroidery-1",
        "Brother PR1055X",
        machine_class="embroidery",
        gateway="gw-1",
        required_skills=["embroidery"],
    )
    trainer = manage.add_member(db, "Tess", now=NOW)
    member = manage.add_member(db, "Mia", email="mia@example.org", badge="04a1b2c3d4e5f6", now=NOW)
    certification = manage.grant_certification(
        db, member.id, "embroidery", level=CertificationLevel.SUPERVISED, granted_by=trainer.id, now=NOW
    )
    db.commit()
    assert (gateway.name, gateway.site) == ("gw-1", site_id)
    assert machine.gateway is gateway
    assert machine.required_skills == [skill]
    assert [badge.uid for badge in member.badges] == ["04A1B2C3D4E5F6"]
    assert certification.granted_by is trainer
    assert certification.is_valid(NOW)


def test_certification_validity(db: Session, workshop: Workshop) -> None:
    paris = timezone(timedelta(hours=2))
    expiring = manage.grant_certification(
        db, workshop.bob, "overlocker", expires_at=datetime(2026, 6, 1, 2, 0, tzinfo=paris)
    )
    assert expiring.expires_at == datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    assert expiring.is_valid(datetime(2026, 5, 31, 23, 59, tzinfo=UTC))
    assert not expiring.is_valid(datetime(2026, 6, 1, 0, 0, tzinfo=UTC))
    revoked = manage.revoke_certification(db, expiring.id, reason="moved away", now=NOW)
    assert (revoked.revoked_at, revoked.revoke_reason) == (NOW, "moved away")
    assert not revoked.is_valid(NOW)


def test_duplicates(db: Session, workshop: Workshop) -> None:
    with pytest.raises(manage.AlreadyExists, match="badge A1B2C3D4 is already enrolled"):
        manage.enrol_badge(db, workshop.bob, "a1b2c3d4")
    with pytest.raises(manage.AlreadyExists):
        manage.add_skill(db, "overlocker", "Again")
    with pytest.raises(manage.AlreadyExists):
        manage.add_machine(db, "sewing-1", "Again", machine_class="sewing")
    with pytest.raises(ValueError, match="gw-atelier exists already"):  # the builtin it resembles
        manage.add_gateway(db, "gw-atelier", site=workshop.site)


def test_unknown_things(db: Session, workshop: Workshop) -> None:
    with pytest.raises(manage.NotFound, match="no member 999"):
        manage.get_member(db, 999)
    with pytest.raises(LookupError, match="no skill juggling"):
        manage.add_machine(db, "m-1", "M", machine_class="x", required_skills=["juggling"])
    with pytest.raises(manage.NotFound, match="no gateway gw-x"):
        manage.add_machine(db, "m-1", "M", machine_class="x", gateway="gw-x")
    with pytest.raises(manage.NotFound):
        manage.grant_certification(db, workshop.bob, "overlocker", granted_by=999)
    with pytest.raises(manage.NotFound):
        manage.set_badge_active(db, "FFFF", False)
    with pytest.raises(manage.NotFound):
        manage.revoke_certification(db, 999)


def test_invalid_values(db: Session, workshop: Workshop) -> None:
    with pytest.raises(manage.InvalidValue, match="invalid machine id"):
        manage.add_machine(db, "Sewing 2", "M", machine_class="x")
    with pytest.raises(manage.InvalidValue, match="invalid site id"):
        manage.add_gateway(db, "gw-2", site="Main Site")
    with pytest.raises(manage.InvalidValue, match="hex"):
        manage.enrol_badge(db, workshop.bob, "badge!")
    with pytest.raises(manage.InvalidValue, match="time zone"):
        manage.grant_certification(db, workshop.bob, "overlocker", expires_at=datetime(2027, 1, 1))
    with pytest.raises(manage.InvalidValue, match="name"):
        manage.add_member(db, "   ")


def test_revoking_twice_is_a_conflict(db: Session, workshop: Workshop) -> None:
    certification = manage.grant_certification(db, workshop.bob, "overlocker")
    manage.revoke_certification(db, certification.id)
    with pytest.raises(manage.Conflict, match="already revoked"):
        manage.revoke_certification(db, certification.id)


def test_lifting_a_lockout_forgets_its_reason(db: Session, workshop: Workshop) -> None:
    machine = manage.set_lockout(db, "sewing-1", True, "oiling")
    assert (machine.locked_out, machine.lockout_reason) == (True, "oiling")
    machine = manage.set_lockout(db, "sewing-1", False, "ignored")
    assert (machine.locked_out, machine.lockout_reason) == (False, None)

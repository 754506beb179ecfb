"""Who may certify and revoke, and what each grant and revocation leaves behind."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import CertificationLevel
from server import workshop as manage
from server.db import AppendOnly
from server.models import (
    AuditEntry,
    Certification,
    CertificationEvent,
    CertificationEventKind,
    GrantedVia,
    MemberStatus,
)
from server.training import certify
from server.training.errors import (
    AlreadyCertified,
    MemberInactive,
    NotATrainer,
    NotPermitted,
    PrerequisiteMissing,
    ReasonRequired,
    SelfCertification,
    TrainingError,
)
from tests.server.conftest import NOW, Workshop

LATER = NOW + timedelta(days=1)
AUTONOMOUS, SUPERVISED, TRAINER = (
    CertificationLevel.AUTONOMOUS,
    CertificationLevel.SUPERVISED,
    CertificationLevel.TRAINER,
)


def grant(
    db: Session, actor: int, member: int, skill: str, level: CertificationLevel = AUTONOMOUS, **extra: object
) -> Certification:
    return certify.grant(db, actor_id=actor, member_id=member, skill=skill, level=level, now=LATER, **extra)  # type: ignore[arg-type]


def events(db: Session, certification_id: int) -> list[tuple[str, int | None, str | None, str | None]]:
    rows = db.scalars(
        sa.select(CertificationEvent)
        .where(CertificationEvent.certification_id == certification_id)
        .order_by(CertificationEvent.id)
    )
    return [(row.kind.value, row.actor_id, row.via, row.reason) for row in rows]


def audit_trail(db: Session, certification_id: int) -> list[AuditEntry]:
    return list(
        db.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.subject_type == "certification", AuditEntry.subject_id == str(certification_id))
            .order_by(AuditEntry.id)
        )
    )


def test_a_trainer_certifies_and_it_is_recorded(db: Session, workshop: Workshop) -> None:
    certification = grant(
        db, workshop.trainer, workshop.bob, "industrial-sewing", note="two-hour session, seams and threading"
    )
    db.commit()
    assert (certification.member_id, certification.level, certification.granted_by_id) == (
        workshop.bob,
        AUTONOMOUS,
        workshop.trainer,
    )
    assert (certification.granted_at, certification.granted_via) == (LATER, GrantedVia.WEB)
    assert events(db, certification.id) == [
        ("granted", workshop.trainer, "web", "two-hour session, seams and threading")
    ]
    [entry] = audit_trail(db, certification.id)
    assert (entry.action, entry.actor_id, entry.at) == ("certification.grant", workshop.trainer, LATER)
    assert entry.details == {
        "member_id": workshop.bob,
        "skill": "industrial-sewing",
        "level": "autonomous",
        "expires_at": None,
        "via": "web",
        "note": "two-hour session, seams and threading",
    }


def test_a_non_trainer_cannot_certify(db: Session, workshop: Workshop) -> None:
    # Alice holds industrial-sewing at the autonomous level: not enough to certify in it.
    with pytest.raises(NotATrainer, match="Alice Martin is not a trainer for Industrial sewing"):
        grant(db, workshop.alice, workshop.bob, "industrial-sewing")
    # Tess trains sewing and overlocker, not 3D printing.
    with pytest.raises(PermissionError, match="not a trainer for FDM printer"):
        grant(db, workshop.trainer, workshop.bob, "fdm-printer")


def test_an_expired_or_revoked_trainer_certifies_no_more(db: Session, workshop: Workshop) -> None:
    other = manage.add_member(db, "Théo Former", now=NOW).id
    lapsed = manage.grant_certification(
        db, other, "fdm-printer", level=TRAINER, expires_at=NOW + timedelta(hours=1)
    )
    db.commit()
    with pytest.raises(NotATrainer):
        grant(db, other, workshop.bob, "fdm-printer")  # LATER is past the expiry
    assert lapsed.id
    revoked = manage.grant_certification(db, other, "overlocker", level=TRAINER, now=NOW)
    manage.revoke_certification(db, revoked.id, reason="moved away", now=NOW)
    db.commit()
    with pytest.raises(NotATrainer):
        grant(db, other, workshop.bob, "overlocker")


def test_a_manager_certifies_in_any_skill(db: Session, workshop: Workshop, manager: int) -> None:
    certification = grant(db, manager, workshop.bob, "fdm-printer", TRAINER)
    db.commit()
    assert (certification.granted_by_id, certification.level) == (manager, TRAINER)
    assert events(db, certification.id) == [("granted", manager, "web", None)]


def test_nobody_certifies_themself(db: Session, workshop: Workshop, manager: int) -> None:
    with pytest.raises(SelfCertification, match="Nobody certifies themself"):
        grant(db, workshop.trainer, workshop.trainer, "industrial-sewing", TRAINER)
    with pytest.raises(SelfCertification):
        grant(db, manager, manager, "fdm-printer")
    with pytest.raises(PermissionError):  # self comes first, whoever asks
        grant(db, workshop.bob, workshop.bob, "fdm-printer")


def test_a_prerequisite_must_be_held_first(db: Session, workshop: Workshop) -> None:
    manage.set_skill_training(db, "overlocker", prerequisites=["industrial-sewing"])
    db.commit()
    with pytest.raises(
        PrerequisiteMissing, match="Bob Durand must first hold Industrial sewing before Overlocker"
    ):
        grant(db, workshop.trainer, workshop.bob, "overlocker")
    # Erin's sewing certification expired: an expired prerequisite is not held.
    with pytest.raises(PrerequisiteMissing):
        grant(db, workshop.trainer, workshop.erin, "overlocker", TRAINER)
    # Any valid level of the prerequisite will do.
    grant(db, workshop.trainer, workshop.bob, "industrial-sewing", SUPERVISED)
    assert grant(db, workshop.trainer, workshop.bob, "overlocker").level is AUTONOMOUS
    assert isinstance(PrerequisiteMissing("x"), ValueError)


def test_a_level_held_already_is_a_conflict(db: Session, workshop: Workshop) -> None:
    with pytest.raises(AlreadyCertified, match="already holds Industrial sewing at the autonomous level"):
        grant(db, workshop.trainer, workshop.alice, "industrial-sewing", AUTONOMOUS)
    with pytest.raises(AlreadyCertified):
        grant(db, workshop.trainer, workshop.alice, "industrial-sewing", SUPERVISED)
    # A higher level is a new certification; the lower one stays in the record.
    assert grant(db, workshop.trainer, workshop.alice, "industrial-sewing", TRAINER).level is TRAINER
    # An expired certification is not held: Erin is certified again.
    assert grant(db, workshop.trainer, workshop.erin, "industrial-sewing").member_id == workshop.erin


def test_suspended_members_neither_certify_nor_get_certified(db: Session, workshop: Workshop) -> None:
    with pytest.raises(MemberInactive, match="Carol Petit's membership is suspended"):
        grant(db, workshop.trainer, workshop.carol, "overlocker")
    manage.set_member_status(db, workshop.trainer, MemberStatus.SUSPENDED)
    db.commit()
    with pytest.raises(NotPermitted, match="suspended"):
        grant(db, workshop.trainer, workshop.bob, "overlocker")


def test_unknown_things_and_bad_values(db: Session, workshop: Workshop) -> None:
    with pytest.raises(manage.NotFound):
        grant(db, workshop.trainer, 999, "overlocker")
    with pytest.raises(manage.NotFound):
        grant(db, 999, workshop.bob, "overlocker")
    with pytest.raises(LookupError):
        grant(db, workshop.trainer, workshop.bob, "juggling")
    with pytest.raises(manage.InvalidValue, match="already past"):
        grant(db, workshop.trainer, workshop.bob, "overlocker", expires_at=NOW)


def test_revocation_by_a_trainer_with_a_reason(db: Session, workshop: Workshop) -> None:
    certification = grant(db, workshop.trainer, workshop.bob, "overlocker")
    db.commit()
    with pytest.raises(ReasonRequired, match="Say why"):
        certify.revoke(
            db, actor_id=workshop.trainer, certification_id=certification.id, reason="  ", now=LATER
        )
    revoked = certify.revoke(
        db,
        actor_id=workshop.trainer,
        certification_id=certification.id,
        reason=" unsafe threading ",
        now=LATER,
    )
    db.commit()
    assert (revoked.revoked_at, revoked.revoked_by_id, revoked.revoke_reason) == (
        LATER,
        workshop.trainer,
        "unsafe threading",
    )
    assert events(db, certification.id) == [
        ("granted", workshop.trainer, "web", None),
        ("revoked", workshop.trainer, "web", "unsafe threading"),
    ]
    trail = audit_trail(db, certification.id)
    assert [entry.action for entry in trail] == ["certification.grant", "certification.revoke"]
    assert trail[1].details["reason"] == "unsafe threading"
    with pytest.raises(manage.Conflict, match="already revoked"):
        certify.revoke(
            db, actor_id=workshop.trainer, certification_id=certification.id, reason="again", now=LATER
        )


def test_revocation_follows_the_same_rules(db: Session, workshop: Workshop, manager: int) -> None:
    certification = grant(db, workshop.trainer, workshop.bob, "overlocker")
    db.commit()
    with pytest.raises(NotATrainer):
        certify.revoke(db, actor_id=workshop.alice, certification_id=certification.id, reason="no", now=LATER)
    with pytest.raises(SelfCertification, match="revokes their own"):
        certify.revoke(db, actor_id=workshop.bob, certification_id=certification.id, reason="no", now=LATER)
    with pytest.raises(manage.NotFound):
        certify.revoke(db, actor_id=manager, certification_id=999, reason="no", now=LATER)
    assert (
        certify.revoke(
            db, actor_id=manager, certification_id=certification.id, reason="left the atelier", now=LATER
        ).revoked_by_id
        == manager
    )


def test_the_change_its_event_and_its_audit_entry_are_one_transaction(
    db: Session, workshop: Workshop
) -> None:
    def counts() -> tuple[int | None, ...]:
        return tuple(
            db.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Certification, CertificationEvent, AuditEntry)
        )

    before = counts()
    grant(db, workshop.trainer, workshop.bob, "overlocker")
    assert counts() == tuple((count or 0) + 1 for count in before)
    db.rollback()
    assert counts() == before


def test_history_is_append_only(db: Session, workshop: Workshop) -> None:
    certification = grant(db, workshop.trainer, workshop.bob, "overlocker")
    db.commit()
    event = db.scalars(
        sa.select(CertificationEvent).where(CertificationEvent.certification_id == certification.id)
    ).one()
    entry = audit_trail(db, certification.id)[0]
    event.reason = "rewritten"
    with pytest.raises(AppendOnly):
        db.flush()
    db.rollback()
    db.delete(entry)
    with pytest.raises(AppendOnly, match="audit_entries"):
        db.flush()
    db.rollback()
    assert events(db, certification.id)[0][3] is None


def test_seeded_records_are_in_the_history_too(db: Session, workshop: Workshop) -> None:
    seeded = db.scalars(sa.select(Certification).where(Certification.member_id == workshop.alice)).first()
    assert seeded is not None
    assert seeded.granted_via is GrantedVia.SEED
    assert events(db, seeded.id)[0][:3] == ("granted", workshop.trainer, "seed")


def test_errors_are_training_errors_and_builtins() -> None:
    assert issubclass(NotATrainer, TrainingError)
    assert issubclass(NotATrainer, PermissionError)
    assert issubclass(SelfCertification, PermissionError)
    assert issubclass(AlreadyCertified, ValueError)
    assert issubclass(ReasonRequired, ValueError)
    assert issubclass(TrainingError, manage.WorkshopError)
    assert CertificationEventKind.EXPIRED.value == "expired"

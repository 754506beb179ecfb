"""Writing a certification's history: its event and the audit entry, with the change itself.

Used by :mod:`server.workshop` (which every grant and revocation goes through, whatever
the way it came: the API, the machine or a manager's tool), so that none escapes the record.
"""

from datetime import datetime

from sqlalchemy.orm import Session

from server.audit import audit
from server.models import Certification, CertificationEvent, CertificationEventKind


def record_grant(db: Session, certification: Certification, *, note: str | None, skill: str) -> None:
    at = certification.granted_at
    db.add(
        CertificationEvent(
            certification_id=certification.id,
            kind=CertificationEventKind.GRANTED,
            at=at,
            actor_id=certification.granted_by_id,
            via=certification.granted_via.value,
            reason=note,
        )
    )
    audit(
        db,
        "certification.grant",
        "certification",
        certification.id,
        actor_id=certification.granted_by_id,
        at=at,
        details={
            "member_id": certification.member_id,
            "skill": skill,
            "level": certification.level,
            "expires_at": certification.expires_at,
            "via": certification.granted_via,
            "note": note,
        },
    )


def record_revocation(
    db: Session, certification: Certification, *, via: str, skill: str, at: datetime
) -> None:
    db.add(
        CertificationEvent(
            certification_id=certification.id,
            kind=CertificationEventKind.REVOKED,
            at=at,
            actor_id=certification.revoked_by_id,
            via=via,
            reason=certification.revoke_reason,
        )
    )
    audit(
        db,
        "certification.revoke",
        "certification",
        certification.id,
        actor_id=certification.revoked_by_id,
        at=at,
        details={
            "member_id": certification.member_id,
            "skill": skill,
            "level": certification.level,
            "via": via,
            "reason": certification.revoke_reason,
        },
    )

"""Who may use which machine, and why not: the rules of access, in one place.

:func:`decide` runs on every badge tap. It reads what it needs in one indexed
query and writes one log row. Both statements are built once, at import, and
run on the session's connection without the ORM: building and ORM-loading
them on every tap cost several times more than running them.

The gateway never re-implements these rules; offline it looks up their
compiled result.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import AccessReply, AccessRequest, Reason
from server.db import table
from server.models import (
    AccessDecision,
    Badge,
    Certification,
    Gateway,
    Machine,
    Member,
    MemberStatus,
    Skill,
    machine_skills,
)

MESSAGE_MAX = 200  # AccessReply.message
NAME_MAX = 120  # AccessReply.member_name

_gateways = table(Gateway).c
_machines = table(Machine).c
_badges = table(Badge).c
_members = table(Member).c
_skills = table(Skill).c
_certifications = table(Certification).c
_required = machine_skills.c

# Everything a decision needs, in one round trip (the database may be across a network):
# the gateway; the machine among that gateway's own (null: unknown machine); the badge and
# its holder (null: unknown badge); then one row per skill the machine requires, with each
# of the member's unrevoked certifications in it (no skill required: one row of nulls).
# Every join follows a unique or a leading index column.
_FACTS = (
    sa.select(
        _gateways.id,
        _machines.id,
        _machines.name,
        _machines.locked_out,
        _machines.lockout_reason,
        _badges.active,
        _members.id,
        _members.name,
        _members.status,
        _skills.id,
        _skills.name,
        _certifications.id,
        _certifications.expires_at,
    )
    .select_from(
        table(Gateway)
        .outerjoin(
            table(Machine),
            sa.and_(_machines.gateway_id == _gateways.id, _machines.slug == sa.bindparam("machine")),
        )
        .outerjoin(table(Badge), _badges.uid == sa.bindparam("badge"))
        .outerjoin(table(Member), _members.id == _badges.member_id)
        .outerjoin(machine_skills, _required.machine_id == _machines.id)
        .outerjoin(table(Skill), _skills.id == _required.skill_id)
        .outerjoin(
            table(Certification),
            sa.and_(
                _certifications.member_id == _members.id,
                _certifications.skill_id == _skills.id,
                _certifications.revoked_at.is_(None),
            ),
        )
    )
    .where(_gateways.slug == sa.bindparam("gateway"), _gateways.site == sa.bindparam("site"))
)

# On PostgreSQL the same round trip also stops this transaction's commit from waiting for
# the disk: the log is a record of decisions, not of money, so a database crash may lose
# its last rows, but a badge tap must not wait for the write-ahead log to be flushed.
# (SQLite's equivalent is the connection's synchronous=NORMAL.)
_FACTS_ON_POSTGRESQL = _FACTS.add_columns(sa.func.set_config("synchronous_commit", "off", True))

_LOG = sa.insert(table(AccessDecision))


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision before it is logged and sent."""

    reason: Reason
    message: str
    member_id: int | None = None
    member_name: str | None = None

    @property
    def granted(self) -> bool:
        return self.reason is Reason.GRANTED


def decide(db: Session, site: str, gateway_slug: str, request: AccessRequest, now: datetime) -> AccessReply:
    """Answer ``request`` from ``gateway_slug`` of ``site``, log the decision and commit.

    The checks run in a fixed order and the first failure is the answer, so a
    member hears about the problem they can act on first.
    """
    connection = db.connection()
    verdict = _judge(connection, site, gateway_slug, request, now)
    connection.execute(
        _LOG,
        {
            "at": now,
            "request_id": request.request_id,
            "gateway_slug": gateway_slug,
            "machine_slug": request.machine,
            "badge_uid": request.badge,
            "member_id": verdict.member_id,
            "granted": verdict.granted,
            "reason": verdict.reason.value,
            "message": verdict.message,
        },
    )
    db.commit()
    return AccessReply(
        request_id=request.request_id,
        machine=request.machine,
        badge=request.badge,
        granted=verdict.granted,
        reason=verdict.reason,
        message=verdict.message,
        member_id=verdict.member_id,
        member_name=verdict.member_name,
    )


def _judge(
    connection: sa.Connection, site: str, gateway_slug: str, request: AccessRequest, now: datetime
) -> Verdict:
    facts = _FACTS_ON_POSTGRESQL if connection.dialect.name == "postgresql" else _FACTS
    rows = connection.execute(
        facts, {"gateway": gateway_slug, "site": site, "machine": request.machine, "badge": request.badge}
    ).all()
    if not rows:
        return Verdict(Reason.UNKNOWN_GATEWAY, f"Gateway {gateway_slug} is not registered here.")
    _, machine_id, machine_name, locked_out, lockout_reason, badge_active, member_id, member_name, status = (
        rows[0][:9]
    )
    if machine_id is None:
        return Verdict(Reason.UNKNOWN_MACHINE, f"Machine {request.machine} is not known on this gateway.")
    if member_id is None:
        return Verdict(Reason.UNKNOWN_BADGE, "This badge is not enrolled: ask a manager.")
    refusal = _standing(badge_active, status, machine_name, locked_out, lockout_reason) or (
        _missing_certification([row[9:13] for row in rows], now)
    )
    reason, message = refusal or (Reason.GRANTED, f"Welcome, {member_name}.")
    return Verdict(reason, _clip(message), member_id, _clip(member_name, NAME_MAX))


def _standing(
    badge_active: bool,
    member_status: MemberStatus,
    machine_name: str,
    locked_out: bool,
    lockout_reason: str | None,
) -> tuple[Reason, str] | None:
    """Why the holder may not use any machine now, or this one at all; None if nothing."""
    if not badge_active:
        return Reason.BADGE_DISABLED, "This badge is disabled: ask a manager."
    if member_status is not MemberStatus.ACTIVE:
        return Reason.MEMBER_INACTIVE, "Your membership is suspended: ask a manager."
    if locked_out:
        why = f": {lockout_reason}" if lockout_reason else "."
        return Reason.MACHINE_LOCKED_OUT, f"{machine_name} is locked out{why}"
    return None


def _missing_certification(rows: list[Any], now: datetime) -> tuple[Reason, str] | None:
    """Which required skill lacks a valid certification; None if none.

    ``rows`` are (skill id, skill name, certification id, expires at), as
    :data:`_FACTS` ends; a skill id of None means the machine requires none.

    A skill with no certification at all outranks one whose certification
    expired: renewing the expired one would not be enough.
    """
    missing: dict[int, str] = {}  # skill id -> name
    expired: dict[int, tuple[str, datetime]] = {}  # skill id -> (name, latest expiry)
    valid: set[int] = set()
    for skill_id, skill_name, certification_id, expires_at in rows:
        if skill_id is None:
            continue
        if certification_id is None:
            missing[skill_id] = skill_name
        elif expires_at is None or expires_at > now:
            valid.add(skill_id)
        elif skill_id not in expired or expires_at > expired[skill_id][1]:
            expired[skill_id] = (skill_name, expires_at)
    if missing:
        return Reason.NOT_CERTIFIED, f"You are not certified for {', '.join(sorted(missing.values()))}."
    lapsed = [item for skill_id, item in expired.items() if skill_id not in valid]
    if lapsed:
        name, expires_at = min(lapsed, key=lambda item: item[1])
        return (
            Reason.CERTIFICATION_EXPIRED,
            f"Your certification for {name} expired on {expires_at:%Y-%m-%d}.",
        )
    return None


def _clip(text: str, limit: int = MESSAGE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

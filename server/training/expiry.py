"""When a certification stops counting: by date, and by disuse.

A certification is *valid* at a moment when it is not revoked, has not lapsed,
its expiry date (if any) is later, and — for a skill with a disuse period — the
member has used a machine requiring the skill within that many months of the
later of their last session's start and the grant.

Validity is computed wherever it is needed (the access check, the rules of
certifying, the lists), from the same few columns, by :func:`standing`. The
:func:`sweep_expiries` records an ``expired`` event once per certification when
it first finds it expired, and marks it lapsed: an expiry is final.
"""

import calendar
import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from server.audit import audit
from server.db import rowcount, table
from server.models import (
    Certification,
    CertificationEvent,
    CertificationEventKind,
    Member,
    Skill,
    UsageSession,
    machine_skills,
)

log = logging.getLogger(__name__)

_sessions = table(UsageSession).alias("disuse_sessions")
_requiring = machine_skills.alias("disuse_machines")
_certifications = table(Certification).c
_skills = table(Skill).c


def last_use(
    member_id: sa.ColumnExpressionArgument[int], skill_id: sa.ColumnExpressionArgument[int]
) -> sa.ScalarSelect[datetime]:
    """The start of the member's latest session on any machine requiring the skill.

    Written machine by machine so that every database takes the same path whatever the
    member's history: the few machines requiring the skill, then for each one the
    newest entry of ``usage_sessions(member_id, machine_id, started_at)``, one index probe.
    """
    latest_on_machine = (
        sa.select(sa.func.max(_sessions.c.started_at))
        .where(_sessions.c.member_id == member_id, _sessions.c.machine_id == _requiring.c.machine_id)
        # Two levels down: say what comes from outside, or the member's table is joined in here.
        .correlate_except(_sessions)
        .scalar_subquery()
    )
    return (
        sa.select(sa.func.max(latest_on_machine))
        .where(_requiring.c.skill_id == skill_id)
        .correlate_except(_requiring)
        .scalar_subquery()
    )


def last_use_if_disuse(
    member_id: sa.ColumnExpressionArgument[int],
    skill_id: sa.ColumnExpressionArgument[int],
    disuse_months: sa.ColumnElement[int | None] | InstrumentedAttribute[int | None],
) -> sa.ColumnElement[datetime | None]:
    """:func:`last_use`, looked up only for a skill with a disuse period (null otherwise)."""
    return sa.case((disuse_months.is_not(None), last_use(member_id, skill_id)), else_=sa.null()).label(
        "last_use"
    )


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months later (the 31st becomes the month's last day)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def disuse_deadline(
    granted_at: datetime, last_used: datetime | None, disuse_months: int | None
) -> datetime | None:
    """When the certification lapses unless the member uses the skill again; None if it cannot."""
    if disuse_months is None:
        return None
    start = granted_at if last_used is None or last_used < granted_at else last_used
    return add_months(start, disuse_months)


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an unrevoked certification stands at a moment."""

    valid: bool
    ends_at: datetime | None
    """When it expires, or expired: the earlier of its date and its disuse deadline; None: never."""
    by_disuse: bool
    """``ends_at`` is the disuse deadline, not the expiry date."""
    disuse_deadline: datetime | None


def standing(
    *,
    granted_at: datetime,
    expires_at: datetime | None,
    lapsed_at: datetime | None,
    disuse_months: int | None,
    last_used: datetime | None,
    now: datetime,
) -> Standing:
    """Valid at ``now``, or since when not (revocation is the caller's to check)."""
    deadline = disuse_deadline(granted_at, last_used, disuse_months)
    if lapsed_at is not None:
        by_date = expires_at is not None and expires_at <= lapsed_at
        return Standing(False, lapsed_at, not by_date, deadline)
    if deadline is not None and (expires_at is None or deadline < expires_at):
        return Standing(deadline > now, deadline, True, deadline)
    return Standing(expires_at is None or expires_at > now, expires_at, False, deadline)


def describe(skill_name: str, ends: Standing, disuse_months: int | None) -> str:
    """Why a certification in ``skill_name`` stopped counting, for the member."""
    assert ends.ends_at is not None  # an expired certification has an end
    if ends.by_disuse:
        months = f"{disuse_months} months" if disuse_months is not None else "too long"
        return f"Your certification for {skill_name} lapsed by disuse on {ends.ends_at:%Y-%m-%d} (not used for {months})."
    return f"Your certification for {skill_name} expired on {ends.ends_at:%Y-%m-%d}."


# Unrevoked, unlapsed certifications that may expire, with what standing() needs.
_CANDIDATES = (
    sa.select(
        _certifications.id,
        _certifications.member_id,
        _skills.slug,
        _skills.name,
        _skills.disuse_months,
        _certifications.granted_at,
        _certifications.expires_at,
        last_use_if_disuse(_certifications.member_id, _skills.id, _skills.disuse_months),
    )
    .select_from(table(Certification).join(table(Skill), _skills.id == _certifications.skill_id))
    .where(
        _certifications.revoked_at.is_(None),
        _certifications.lapsed_at.is_(None),
        sa.or_(_certifications.expires_at.is_not(None), _skills.disuse_months.is_not(None)),
    )
    .order_by(_certifications.id)
)


@dataclass(frozen=True, slots=True)
class Lapse:
    """A certification the sweep found expired, and recorded."""

    certification_id: int
    member_id: int
    skill: str
    at: datetime
    by_disuse: bool
    reason: str


def sweep_expiries(db: Session, now: datetime) -> list[Lapse]:
    """Record every expiry not yet recorded, once, and commit; the lapses recorded now.

    Each expired certification is marked lapsed (at the moment it expired) and gets
    an ``expired`` event and an audit entry, in one transaction. Safe to run in
    several server processes at once: the UPDATE only touches an unlapsed row.
    """
    connection = db.connection()
    found: list[Lapse] = []
    try:
        for row in connection.execute(
            _CANDIDATES.where(sa.or_(_certifications.expires_at <= now, _skills.disuse_months.is_not(None)))
        ):
            (
                certification_id,
                member_id,
                skill,
                _,
                disuse_months,
                granted_at,
                expires_at,
                last_used,
            ) = row
            ends = standing(
                granted_at=granted_at,
                expires_at=expires_at,
                lapsed_at=None,
                disuse_months=disuse_months,
                last_used=last_used,
                now=now,
            )
            if ends.valid or ends.ends_at is None:
                continue
            lapsed = rowcount(
                connection.execute(
                    sa.update(table(Certification))
                    .where(
                        _certifications.id == certification_id,
                        _certifications.lapsed_at.is_(None),
                        _certifications.revoked_at.is_(None),
                    )
                    .values(lapsed_at=ends.ends_at)
                )
            )
            if not lapsed:
                continue  # another server noticed it first
            reason = f"not used for {disuse_months} months" if ends.by_disuse else "expiry date reached"
            db.add(
                CertificationEvent(
                    certification_id=certification_id,
                    kind=CertificationEventKind.EXPIRED,
                    at=ends.ends_at,
                    actor_id=None,
                    via="sweep",
                    reason=reason,
                )
            )
            audit(
                db,
                "certification.expire",
                "certification",
                certification_id,
                actor_id=None,
                at=now,
                details={
                    "member_id": member_id,
                    "skill": skill,
                    "expired_at": ends.ends_at,
                    "reason": reason,
                },
            )
            found.append(Lapse(certification_id, member_id, skill, ends.ends_at, ends.by_disuse, reason))
        db.commit()
    except BaseException:
        db.rollback()
        raise
    for lapse in found:
        log.info(
            "certification %d (member %d, %s) expired on %s: %s",
            lapse.certification_id,
            lapse.member_id,
            lapse.skill,
            f"{lapse.at:%Y-%m-%d}",
            lapse.reason,
        )
    return found


@dataclass(frozen=True, slots=True)
class Expiring:
    """A valid certification that ends within the horizon asked for."""

    certification_id: int
    member_id: int
    member_name: str
    skill: str
    level: str
    ends_at: datetime
    by_disuse: bool
    expires_at: datetime | None
    disuse_deadline: datetime | None


def expiring(
    db: Session, now: datetime, until: datetime, skill_ids: set[int] | None = None
) -> list[Expiring]:
    """Valid certifications that will expire (by date or disuse) by ``until``, soonest first.

    ``skill_ids`` limits the list to those skills (a trainer's); None means every skill.
    """
    members = table(Member).c
    query = (
        _CANDIDATES.add_columns(members.name, _certifications.level)
        .join(table(Member), members.id == _certifications.member_id)
        .where(sa.or_(_certifications.expires_at <= until, _skills.disuse_months.is_not(None)))
    )
    if skill_ids is not None:
        query = query.where(_certifications.skill_id.in_(sorted(skill_ids)))
    result = []
    for row in db.execute(query):
        (
            certification_id,
            member_id,
            skill,
            _,
            disuse_months,
            granted_at,
            expires_at,
            last_used,
            name,
            level,
        ) = row
        ends = standing(
            granted_at=granted_at,
            expires_at=expires_at,
            lapsed_at=None,
            disuse_months=disuse_months,
            last_used=last_used,
            now=now,
        )
        if ends.valid and ends.ends_at is not None and ends.ends_at <= until:
            result.append(
                Expiring(
                    certification_id,
                    member_id,
                    name,
                    skill,
                    level,
                    ends.ends_at,
                    ends.by_disuse,
                    expires_at,
                    ends.disuse_deadline,
                )
            )
    result.sort(key=lambda item: (item.ends_at, item.certification_id))
    return result

"""Who may use which machine, and why not: the rules of access, in one place.

:func:`decide` runs on every badge tap. It reads what it needs in one indexed
query and writes one log row; a member certified at the *supervised* level costs
one more query, about the trainer supervising. The statements are built once, at
import, and run on the session's connection without the ORM: building and
ORM-loading them on every tap cost several times more than running them.

On PostgreSQL a tap costs two round trips when nothing else is needed: the query, outside
any transaction, then the log row, a transaction of its own (see :func:`_decide_on_postgresql`).

A certification counts when it is unrevoked and valid by date and by disuse
(:func:`server.training.expiry.standing`, the one definition of it).

The gateway never re-implements these rules; offline it looks up their
compiled result.
"""

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import AccessReply, AccessRequest, CertificationLevel, Reason
from server.billing.at_machine import prepaid_verdict
from server.db import rowcount, table, unpinged_checkout
from server.models import (
    LEVEL_RANK,
    AccessDecision,
    Badge,
    Certification,
    Gateway,
    Machine,
    Member,
    MemberStatus,
    SecondFactorConfirmation,
    Skill,
    machine_skills,
)
from server.training.expiry import Standing, describe, last_use_if_disuse, standing

log = logging.getLogger(__name__)

MESSAGE_MAX = 200  # AccessReply.message
NAME_MAX = 120  # AccessReply.member_name

DEFAULT_SUPERVISION_WINDOW = timedelta(seconds=300)
DEFAULT_SECOND_FACTOR_WINDOW = timedelta(seconds=120)

_gateways = table(Gateway).c
_machines = table(Machine).c
_badges = table(Badge).c
_members = table(Member).c
_skills = table(Skill).c
_certifications = table(Certification).c
_decisions = table(AccessDecision).c
_required = machine_skills.c
_confirmations = table(SecondFactorConfirmation).c

# Everything a decision needs, in one round trip (the database may be across a network):
# the gateway; the machine among that gateway's own (null: unknown machine); the badge and
# its holder (null: unknown badge); then one row per skill the machine requires, with each
# of the member's unrevoked certifications in it (no skill required: one row of nulls), and
# for a skill with a disuse period the member's last session on a machine requiring it.
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
        _skills.disuse_months,
        _certifications.id,
        _certifications.level,
        # Only the disuse deadline needs the grant's moment: not read (nor parsed) otherwise.
        sa.case((_skills.disuse_months.is_not(None), _certifications.granted_at), else_=sa.null()),
        _certifications.expires_at,
        _certifications.lapsed_at,
        last_use_if_disuse(_members.id, _skills.id, _skills.disuse_months),
        # Prepaid members get one more query (their balance); the others none.
        _members.prepaid,
        _machines.machine_class,
        _machines.second_factor,
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
# (SQLite's equivalent is the connection's synchronous=NORMAL.) For a decision in a
# transaction the caller had begun already; see _LOG_ON_POSTGRESQL for the others.
_FACTS_ON_POSTGRESQL = _FACTS.add_columns(sa.func.set_config("synchronous_commit", "off", True))

# The supervisor named by a supervised member's request: their badge and standing, when
# they were last granted this machine within the window, and their unrevoked trainer-level
# certifications in the skills that need supervision.
_SUPERVISOR = (
    sa.select(
        _members.id,
        _members.name,
        _members.status,
        _badges.active,
        sa.select(sa.func.max(_decisions.at))
        .where(
            _decisions.member_id == _members.id,
            _decisions.granted.is_(True),
            _decisions.gateway_slug == sa.bindparam("gateway"),
            _decisions.machine_slug == sa.bindparam("machine"),
            _decisions.at >= sa.bindparam("since"),
            _decisions.at <= sa.bindparam("now"),
        )
        .scalar_subquery(),
        _skills.id,
        _skills.disuse_months,
        _certifications.granted_at,
        _certifications.expires_at,
        last_use_if_disuse(_members.id, _skills.id, _skills.disuse_months),
    )
    .select_from(
        table(Badge)
        .join(table(Member), _members.id == _badges.member_id)
        .outerjoin(
            table(Certification),
            sa.and_(
                _certifications.member_id == _members.id,
                _certifications.level == CertificationLevel.TRAINER,
                _certifications.revoked_at.is_(None),
                _certifications.lapsed_at.is_(None),
                _certifications.skill_id.in_(sa.bindparam("skills", expanding=True)),
            ),
        )
        .outerjoin(table(Skill), _skills.id == _certifications.skill_id)
    )
    .where(_badges.uid == sa.bindparam("badge"))
)

# On a machine with a second factor: the member's confirmation in the web app, used by the
# grant it lets through (compare-and-set: two taps cannot both use one confirmation).
_CONFIRMATION = (
    sa.select(_confirmations.id)
    .where(
        _confirmations.member_id == sa.bindparam("member"),
        _confirmations.machine_id == sa.bindparam("machine"),
        _confirmations.used_at.is_(None),
        _confirmations.confirmed_at >= sa.bindparam("since"),
        _confirmations.confirmed_at <= sa.bindparam("now"),
    )
    .order_by(_confirmations.confirmed_at.desc())
    .limit(1)
)
_USE_CONFIRMATION = (
    sa.update(table(SecondFactorConfirmation))
    .where(_confirmations.id == sa.bindparam("confirmation"), _confirmations.used_at.is_(None))
    .values(used_at=sa.bindparam("now"))
)

_LOG = sa.insert(table(AccessDecision))

_LOGGED = (
    "at",
    "request_id",
    "gateway_slug",
    "machine_slug",
    "badge_uid",
    "member_id",
    "granted",
    "reason",
    "message",
)

# The log row on PostgreSQL when the facts were read outside the transaction: the same row,
# its transaction told not to wait for the disk in the same statement (set_config(..., true)
# lasts until that transaction ends, its commit included; the one-row subquery is always
# evaluated, and never filters the row out).
_LOG_ON_POSTGRESQL = sa.insert(table(AccessDecision)).from_select(
    list(_LOGGED),
    sa.select(*(sa.bindparam(name, type_=_decisions[name].type) for name in _LOGGED)).select_from(
        sa.select(sa.func.set_config("synchronous_commit", "off", True).label("set")).subquery("unsynced")
    ),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision before it is logged and sent."""

    reason: Reason
    message: str
    member_id: int | None = None
    member_name: str | None = None
    trainer: bool = False
    supervisor_id: int | None = None
    max_minutes: int | None = None

    @property
    def granted(self) -> bool:
        return self.reason is Reason.GRANTED


@dataclass(frozen=True, slots=True)
class _Skills:
    """What the member's certifications allow on this machine."""

    refusal: tuple[Reason, str] | None
    supervised: dict[int, str]  # skill id -> name: held at the supervised level only
    trainer: bool  # a valid trainer-level certification for every required skill (at least one)


def decide(
    db: Session,
    site: str,
    gateway_slug: str,
    request: AccessRequest,
    now: datetime,
    *,
    supervision_window: timedelta = DEFAULT_SUPERVISION_WINDOW,
    second_factor_window: timedelta = DEFAULT_SECOND_FACTOR_WINDOW,
) -> AccessReply:
    """Answer ``request`` from ``gateway_slug`` of ``site``, log the decision and commit.

    The checks run in a fixed order and the first failure is the answer, so a
    member hears about the problem they can act on first. A member certified at
    the supervised level is granted only when the request names, as its
    ``supervisor_badge``, a trainer for those skills who was granted this machine
    within ``supervision_window``. On a machine with a second factor, a grant also needs
    the member's unused confirmation in the web app of at most ``second_factor_window``
    before, which the grant uses up; it is the last check, so that only a grant uses it.
    """
    facts = {"gateway": gateway_slug, "site": site, "machine": request.machine, "badge": request.badge}

    def judge(connection: sa.Connection, rows: Sequence[Any], before_writing: Callable[[], None]) -> Verdict:
        return _judge(
            connection,
            rows,
            gateway_slug,
            request,
            now,
            window=supervision_window,
            second_factor_window=second_factor_window,
            before_writing=before_writing,
        )

    def logged(verdict: Verdict) -> dict[str, Any]:
        return {
            "at": now,
            "request_id": request.request_id,
            "gateway_slug": gateway_slug,
            "machine_slug": request.machine,
            "badge_uid": request.badge,
            "member_id": verdict.member_id,
            "granted": verdict.granted,
            "reason": verdict.reason.value,
            "message": verdict.message,
        }

    if not db.in_transaction() and db.get_bind().dialect.name == "postgresql":
        verdict = _decide_on_postgresql(db, facts, judge, logged)
    else:
        connection = db.connection()
        query = _FACTS_ON_POSTGRESQL if connection.dialect.name == "postgresql" else _FACTS
        verdict = judge(connection, connection.execute(query, facts).all(), _nothing)
        connection.execute(_LOG, logged(verdict))
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
        trainer=verdict.trainer,
        supervisor_id=verdict.supervisor_id,
        max_minutes=verdict.max_minutes,
    )


def _nothing() -> None:
    pass


def _decide_on_postgresql(
    db: Session,
    facts: dict[str, str],
    judge: Callable[[sa.Connection, Sequence[Any], Callable[[], None]], Verdict],
    logged: Callable[[Verdict], dict[str, Any]],
) -> Verdict:
    """The decision on a session with no transaction begun yet, in two round trips.

    The reads run in autocommit: no BEGIN before the query, nor COMMIT after. That changes
    nothing of what they see: at PostgreSQL's READ COMMITTED (the engine's) every statement of
    a transaction reads a snapshot of its own anyway, and they lock nothing. The log row is
    then a transaction of its own, one statement; a grant that uses up a second-factor
    confirmation makes a transaction of the confirmation's UPDATE and the log row together,
    as before (:func:`_confirmed` calls ``before_writing``).

    The connection is not checked with a round trip when taken from the pool: if the query
    finds it dead (the database restarted), nothing was done, and the decision starts again
    once, on a new connection.
    """

    def judged_and_logged(
        connection: sa.Connection, rows: Sequence[Any], before_writing: Callable[[], None]
    ) -> Verdict:
        verdict = judge(connection, rows, before_writing)
        connection.execute(_LOG_ON_POSTGRESQL, logged(verdict))
        return verdict

    with unpinged_checkout():
        connection = db.connection()
    with _autocommit(connection) as before_writing:
        try:
            rows = connection.execute(_FACTS, facts).all()
        except sa.exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("decision: the database connection was lost (%s); again on a new one", error.orig)
        else:
            return judged_and_logged(connection, rows, before_writing)
    db.rollback()
    connection = db.connection()  # a new one: the pool dropped every one opened before the loss
    with _autocommit(connection) as before_writing:
        return judged_and_logged(connection, connection.execute(_FACTS, facts).all(), before_writing)


@contextlib.contextmanager
def _autocommit(connection: sa.Connection) -> Iterator[Callable[[], None]]:
    """psycopg in autocommit within the block; it yields what ends that before a write that must
    commit with the log row. The connection never goes back to the pool in autocommit."""
    driver = connection.connection.driver_connection
    assert driver is not None  # a live connection (the pool's record holds it)
    if driver.autocommit:  # an engine made to autocommit (a benchmark's): left as it is
        yield _nothing
        return
    driver.autocommit = True

    def before_writing() -> None:
        driver.autocommit = False  # psycopg sends BEGIN with the next statement

    try:
        yield before_writing
    finally:
        if driver.autocommit and not connection.invalidated:
            try:
                driver.autocommit = False
            except Exception:  # a broken connection: closed rather than pooled
                connection.invalidate()


def _judge(
    connection: sa.Connection,
    rows: Sequence[Any],
    gateway_slug: str,
    request: AccessRequest,
    now: datetime,
    *,
    window: timedelta,
    second_factor_window: timedelta = DEFAULT_SECOND_FACTOR_WINDOW,
    before_writing: Callable[[], None] = _nothing,
) -> Verdict:
    """The verdict from :data:`_FACTS`'s ``rows``, with the further queries it needs.
    ``before_writing`` is called before the one write it may make (a confirmation used up)."""
    holder = _holder(rows, gateway_slug, request)
    if isinstance(holder, Verdict):
        return holder
    member_id, member_name = holder
    name = _clip(member_name, NAME_MAX)
    skills = _certified(rows, now)
    if skills.refusal is not None:
        return Verdict(skills.refusal[0], _clip(skills.refusal[1]), member_id, name)
    supervisor_id = None
    if skills.supervised:
        supervision = _supervision(
            connection,
            gateway_slug,
            request,
            member_id=member_id,
            needed=skills.supervised,
            now=now,
            window=window,
        )
        if isinstance(supervision, str):
            return Verdict(Reason.SUPERVISION_REQUIRED, _clip(supervision), member_id, name)
        supervisor_id = supervision
    max_minutes = None
    prepaid, machine_class = rows[0][18], rows[0][19]
    if prepaid:
        paid = prepaid_verdict(
            connection,
            member_id=member_id,
            machine_id=rows[0][1],
            machine_slug=request.machine,
            machine_class=machine_class,
            now=now,
        )
        if not paid.allowed:
            return Verdict(Reason.INSUFFICIENT_BALANCE, _clip(paid.message), member_id, name)
        max_minutes = paid.max_minutes
    if rows[0][20] and not _confirmed(
        connection, member_id, rows[0][1], now, second_factor_window, before_writing=before_writing
    ):
        return Verdict(
            Reason.SECOND_FACTOR_REQUIRED,
            "Confirm in the web app that you are at this machine, then tap again.",
            member_id,
            name,
        )
    welcome = (
        f"Welcome, {member_name}." if supervisor_id is None else f"Welcome, {member_name}, under supervision."
    )
    return Verdict(
        Reason.GRANTED, _clip(welcome), member_id, name, skills.trainer, supervisor_id, max_minutes
    )


def _confirmed(
    connection: sa.Connection,
    member_id: int,
    machine_id: int,
    now: datetime,
    window: timedelta,
    *,
    before_writing: Callable[[], None],
) -> bool:
    """Whether the member confirmed being at the machine within ``window``; if so, that
    confirmation is used up."""
    found = connection.execute(
        _CONFIRMATION, {"member": member_id, "machine": machine_id, "since": now - window, "now": now}
    ).scalar()
    if found is None:
        return False
    before_writing()
    return rowcount(connection.execute(_USE_CONFIRMATION, {"confirmation": found, "now": now})) == 1


def _holder(rows: Sequence[Any], gateway_slug: str, request: AccessRequest) -> Verdict | tuple[int, str]:
    """The badge holder (id, name) if they may use a machine here at all, else the refusal."""
    if not rows:
        return Verdict(Reason.UNKNOWN_GATEWAY, f"Gateway {gateway_slug} is not registered here.")
    _, machine_id, machine_name, locked_out, lockout_reason, badge_active, member_id, member_name, status = (
        rows[0][:9]
    )
    if machine_id is None:
        return Verdict(Reason.UNKNOWN_MACHINE, f"Machine {request.machine} is not known on this gateway.")
    if member_id is None:
        return Verdict(Reason.UNKNOWN_BADGE, "This badge is not enrolled: ask a manager.")
    refusal = _standing(badge_active, status, machine_name, locked_out, lockout_reason)
    if refusal is not None:
        return Verdict(*refusal, member_id, _clip(member_name, NAME_MAX))
    return member_id, member_name


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
        return Reason.MACHINE_LOCKED_OUT, _clip(f"{machine_name} is locked out{why}")
    return None


def _certified(rows: Sequence[Any], now: datetime) -> _Skills:
    """Whether every required skill has a valid certification, and at which level.

    ``rows`` are :data:`_FACTS` rows; from column 9: skill id, name, disuse months,
    certification id, level, granted at, expires at, lapsed at, last use. A skill
    id of None means the machine requires none.

    A skill with no certification at all outranks one whose certification
    expired: renewing the expired one would not be enough.
    """
    names: dict[int, str] = {}
    best: dict[int, CertificationLevel] = {}
    ended: dict[int, tuple[Standing, int | None]] = {}  # skill id -> its latest-ending expired certification
    for row in rows:
        (
            skill_id,
            skill_name,
            disuse_months,
            certification_id,
            level,
            granted_at,
            expires_at,
            lapsed_at,
            used,
        ) = row[9:18]
        if skill_id is None:
            continue
        names[skill_id] = skill_name
        if certification_id is None:
            continue
        if lapsed_at is None and disuse_months is None and (expires_at is None or expires_at > now):
            # The common case, decided without building a Standing: valid, no disuse period.
            if skill_id not in best or LEVEL_RANK[level] > LEVEL_RANK[best[skill_id]]:
                best[skill_id] = level
            continue
        found = standing(
            granted_at=granted_at,
            expires_at=expires_at,
            lapsed_at=lapsed_at,
            disuse_months=disuse_months,
            last_used=used,
            now=now,
        )
        if found.valid:
            if skill_id not in best or LEVEL_RANK[level] > LEVEL_RANK[best[skill_id]]:
                best[skill_id] = level
        elif skill_id not in ended or _end(found) > _end(ended[skill_id][0]):
            ended[skill_id] = (found, disuse_months)
    missing = sorted(
        name for skill_id, name in names.items() if skill_id not in best and skill_id not in ended
    )
    if missing:
        return _Skills((Reason.NOT_CERTIFIED, f"You are not certified for {', '.join(missing)}."), {}, False)
    lapsed = [(skill_id, item) for skill_id, item in ended.items() if skill_id not in best]
    if lapsed:
        skill_id, (found, disuse_months) = min(lapsed, key=lambda pair: _end(pair[1][0]))
        return _Skills(
            (Reason.CERTIFICATION_EXPIRED, describe(names[skill_id], found, disuse_months)), {}, False
        )
    supervised = {
        skill_id: names[skill_id]
        for skill_id, level in best.items()
        if level is CertificationLevel.SUPERVISED
    }
    trainer = bool(best) and all(level is CertificationLevel.TRAINER for level in best.values())
    return _Skills(None, supervised, trainer)


def _end(expired: Standing) -> datetime:
    # An expired certification always has an end: its date, its disuse deadline or its lapse.
    assert expired.ends_at is not None
    return expired.ends_at


def _supervision(
    connection: sa.Connection,
    gateway_slug: str,
    request: AccessRequest,
    *,
    member_id: int,
    needed: dict[int, str],
    now: datetime,
    window: timedelta,
) -> int | str:
    """The supervising trainer's member id, or why there is none (for the member to read)."""
    if request.supervisor_badge is None:
        skills = ", ".join(sorted(needed.values()))
        return (
            f"You may use this machine for {skills} under supervision only: a trainer must badge on it first."
        )
    rows = connection.execute(
        _SUPERVISOR,
        {
            "badge": request.supervisor_badge,
            "gateway": gateway_slug,
            "machine": request.machine,
            "since": now - window,
            "now": now,
            "skills": sorted(needed),
        },
    ).all()
    if not rows:
        return "The supervisor's badge is not enrolled: a trainer must badge on this machine first."
    refusal = _not_a_supervisor(rows, member_id, needed, now, window)
    return refusal if refusal is not None else int(rows[0][0])


def _not_a_supervisor(
    rows: Sequence[Any], member_id: int, needed: dict[int, str], now: datetime, window: timedelta
) -> str | None:
    """Why the holder of the supervisor badge cannot supervise (``rows``: :data:`_SUPERVISOR`'s); None if they can."""
    supervisor_id, supervisor_name, status, badge_active, last_granted = rows[0][:5]
    if supervisor_id == member_id:
        return "You cannot supervise yourself: a trainer must badge on this machine first."
    if not badge_active or status is not MemberStatus.ACTIVE:
        return f"{supervisor_name} cannot supervise now: their badge or membership is not active."
    trains = {
        skill_id
        for skill_id, disuse_months, granted_at, expires_at, used in (row[5:10] for row in rows)
        if skill_id is not None
        and standing(
            granted_at=granted_at,
            expires_at=expires_at,
            lapsed_at=None,
            disuse_months=disuse_months,
            last_used=used,
            now=now,
        ).valid
    }
    untrained = sorted(name for skill_id, name in needed.items() if skill_id not in trains)
    if untrained:
        return (
            f"{supervisor_name} is not a trainer for {', '.join(untrained)}: a trainer for it must supervise."
        )
    if last_granted is None:
        minutes = max(1, round(window.total_seconds() / 60))
        return f"{supervisor_name} must badge on this machine first: supervision lasts {minutes} min after."
    return None


def _clip(text: str, limit: int = MESSAGE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

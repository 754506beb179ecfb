"""Usage events from gateways, applied to usage sessions exactly once.

Gateways journal every event and send it until it is acknowledged, so an event
may arrive twice, late, or before an older one. :func:`ingest` records each
(gateway, seq) it applies and ignores repeats; and applying an event only ever
moves a session's facts one way (totals up, start earlier, end once), so the
result does not depend on the order events arrive in.

Every write is a single SQL statement that is safe when two server processes
(sharing the subscription) apply events of the same session at once: no
read-modify-write in Python. (The one exception, the ``clock_suspect`` flag, is
written from the row the UPDATE returns, in the same transaction, which holds
the row's lock: see :mod:`server.clocks`.) The statements are built once and run on the
session's connection without the ORM, as in :mod:`server.access`: ingest runs
for every event of every machine.
"""

import functools
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from protocol.messages import EventAck, EventKind, UsageEvent
from server.clock import from_ms
from server.clocks import DEFAULT_TOLERANCE_MS, span_gap_ms, suspect
from server.db import UTCDateTime, table
from server.models import Badge, Gateway, GatewayEvent, Machine, Member, UsageSession

log = logging.getLogger(__name__)

ERROR_MAX = 200  # EventAck.error

_gateways = table(Gateway).c
_machines = table(Machine).c
_sessions = table(UsageSession).c
_members = table(Member).c
_badges = table(Badge).c

_machine_id = sa.select(_machines.id).where(_machines.slug == sa.bindparam("machine")).scalar_subquery()
_LOOKUP = sa.select(_gateways.id, _machine_id, _gateways.clock_offset_ms).where(
    _gateways.slug == sa.bindparam("gateway")
)
_LOOKUP_IN_SITE = _LOOKUP.where(_gateways.site == sa.bindparam("site"))


def _param(name: str, type_: Any = None) -> sa.BindParameter[Any]:
    # Typed, so that PostgreSQL knows what a NULL is and UTCDateTime converts moments;
    # prefixed, because an UPDATE reserves its column names for its own parameters.
    return sa.bindparam(f"event_{name}", type_=type_)


def _greatest(column: sa.ColumnElement[int], name: str) -> sa.ColumnElement[int]:
    # GREATEST on PostgreSQL is MAX on SQLite: CASE is the same on both.
    value = _param(name, sa.BigInteger())
    return sa.case((column < value, value), else_=column)


def _apply_statement() -> sa.Update:
    at = _param("at", UTCDateTime())
    badge = _param("badge", sa.String(32))
    energy = sa.cast(_param("energy_wh", sa.Float()), sa.Float())  # typed for "IS NULL" on PostgreSQL
    offset = sa.cast(_param("clock_offset_ms", sa.BigInteger()), sa.BigInteger())
    ends_now = sa.and_(_param("ends", sa.Boolean()), _sessions.ended_at.is_(None))
    # The member the gateway names if the server knows them, else the badge's holder.
    named_member = sa.select(_members.id).where(_members.id == _param("member_id", sa.Integer()))
    badge_holder = sa.select(_badges.member_id).where(_badges.uid == badge)
    # A supervisor the server does not know (a gateway bug) is left out rather than refusing the event.
    named_supervisor = sa.select(_members.id).where(_members.id == _param("supervisor_id", sa.Integer()))
    return (
        sa.update(table(UsageSession))
        .where(
            _sessions.session_id == _param("session_id"),
            # A session id another gateway (or machine) made must not absorb this event.
            _sessions.gateway_id == _param("gateway_id"),
            _sessions.machine_id == _param("machine_id"),
        )
        # Every expression reads the row as it was before this UPDATE, on both databases.
        .values(
            unlocked_ms=_greatest(_sessions.unlocked_ms, "unlocked_ms"),
            running_ms=_greatest(_sessions.running_ms, "running_ms"),
            idle_ms=_greatest(_sessions.idle_ms, "idle_ms"),
            last_event_seq=_greatest(_sessions.last_event_seq, "seq"),
            # Cumulative like the durations; NULL until a gateway that knows its voltage says.
            energy_wh=sa.case(
                (energy.is_(None), _sessions.energy_wh),
                (sa.or_(_sessions.energy_wh.is_(None), _sessions.energy_wh < energy), energy),
                else_=_sessions.energy_wh,
            ),
            started_at=sa.case((_sessions.started_at > at, at), else_=_sessions.started_at),
            badge_uid=sa.func.coalesce(_sessions.badge_uid, badge),
            decided_by=sa.func.coalesce(_sessions.decided_by, _param("decided_by", sa.String(16))),
            member_id=sa.func.coalesce(
                _sessions.member_id, named_member.scalar_subquery(), badge_holder.scalar_subquery()
            ),
            supervisor_id=sa.func.coalesce(_sessions.supervisor_id, named_supervisor.scalar_subquery()),
            # A session ends once; a second session_ended (a gateway bug) changes nothing.
            ended_at=sa.case((ends_now, at), else_=_sessions.ended_at),
            end_reason=sa.case((ends_now, _param("end_reason", sa.String(40))), else_=_sessions.end_reason),
            # The gateway's clock offset known at ingest: the one farthest from zero is kept.
            clock_offset_ms=sa.case(
                (offset.is_(None), _sessions.clock_offset_ms),
                (
                    sa.or_(
                        _sessions.clock_offset_ms.is_(None),
                        sa.func.abs(offset) > sa.func.abs(_sessions.clock_offset_ms),
                    ),
                    offset,
                ),
                else_=_sessions.clock_offset_ms,
            ),
        )
        # What the clock check needs, as the row now is.
        .returning(
            _sessions.id,
            _sessions.started_at,
            _sessions.ended_at,
            _sessions.unlocked_ms,
            _sessions.clock_offset_ms,
            _sessions.clock_suspect,
        )
    )


_APPLY = _apply_statement()


@functools.cache
def _insert_if_new(dialect: str, target: sa.Table, keys: tuple[str, ...]) -> sa.Executable:
    """INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING the primary key, in the dialect's own words.

    Whether the row was new is read from the row returned, not from the row count: through
    psycopg an INSERT that SQLAlchemy gave a RETURNING clause reports a row count of -1, new
    row or not. A delivery that waited for another process's uncommitted copy of the row gets
    no row back once that copy is committed, and is then a duplicate.
    """
    insert: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        insert = postgresql.insert(target).on_conflict_do_nothing(index_elements=list(keys))
    elif dialect == "sqlite":
        insert = sqlite.insert(target).on_conflict_do_nothing(index_elements=list(keys))
    else:
        raise NotImplementedError(f"usage ingest supports SQLite and PostgreSQL, not {dialect}")
    return insert.returning(*target.primary_key.columns)


def ingest(
    db: Session,
    gateway_slug: str,
    event: UsageEvent,
    now: datetime,
    *,
    site: str | None = None,
    clock_tolerance_ms: int = DEFAULT_TOLERANCE_MS,
) -> EventAck:
    """Apply ``event`` from ``gateway_slug`` once, commit, and say so in the ack.

    ``ok=False`` means refused for good (the gateway stops resending it): the
    gateway (of ``site``, when given) or the machine is unknown, or the session
    id is another gateway's or machine's. A database failure raises instead,
    and then no ack is due: the gateway will send the event again.

    The session is flagged ``clock_suspect`` (and a warning logged) when the gateway's
    clock was off by more than ``clock_tolerance_ms``, or the session's wall-clock span
    and its monotonic duration differ by more (:func:`server.clocks.suspect`).
    """
    connection = db.connection()
    lookup, params = (_LOOKUP, {}) if site is None else (_LOOKUP_IN_SITE, {"site": site})
    found = connection.execute(lookup, {"gateway": gateway_slug, "machine": event.machine, **params}).first()
    if found is None:
        db.rollback()
        return _refuse(event, f"unknown gateway {gateway_slug}", gateway_slug)
    gateway_id, machine_id, clock_offset_ms = found
    if machine_id is None:
        db.rollback()
        return _refuse(event, f"unknown machine {event.machine}", gateway_slug)

    dialect = connection.dialect.name
    try:
        record = _insert_if_new(dialect, table(GatewayEvent), ("gateway_id", "seq"))
        applied = connection.execute(
            record,
            {"gateway_id": gateway_id, "seq": event.seq, "kind": event.kind.value, "received_at": now},
        ).first()
        if applied is None:
            db.rollback()
            log.debug("event %s of gateway %s already applied", event.seq, gateway_slug)
            return EventAck(seq=event.seq)
        at = from_ms(event.at_ms)
        session = {"session_id": event.session_id, "gateway_id": gateway_id, "machine_id": machine_id}
        connection.execute(
            _insert_if_new(dialect, table(UsageSession), ("session_id",)),
            {
                **session,
                "started_at": at,
                "unlocked_ms": 0,
                "running_ms": 0,
                "idle_ms": 0,
                "last_event_seq": 0,
                "clock_suspect": False,
                "clock_offset_ms": None,
            },
        )
        changes = {
            **session,
            "at": at,
            "seq": event.seq,
            "unlocked_ms": event.unlocked_ms,
            "running_ms": event.running_ms,
            "idle_ms": event.idle_ms,
            "energy_wh": event.energy_wh,
            "badge": event.badge,
            "decided_by": event.decided_by.value if event.decided_by is not None else None,
            "member_id": event.member_id,
            "supervisor_id": event.supervisor_id,
            "ends": event.kind is EventKind.SESSION_ENDED,
            "end_reason": event.end_reason,
            "clock_offset_ms": clock_offset_ms,
        }
        updated = connection.execute(
            _APPLY, {f"event_{name}": value for name, value in changes.items()}
        ).all()
        if len(updated) != 1:
            db.rollback()
            return _refuse(event, _collision(db, event, gateway_slug), gateway_slug)
        _check_clock(connection, gateway_slug, event.session_id, updated[0], clock_tolerance_ms)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return EventAck(seq=event.seq)


def _check_clock(
    connection: sa.Connection, gateway_slug: str, session_id: str, row: Any, tolerance_ms: int
) -> None:
    """Set the session's ``clock_suspect`` to what its row now says, if that changed.

    Recomputed at every event rather than only ever set: events may arrive out of order,
    and a session whose end arrived before its start looks, for a moment, as if its
    clock had jumped.
    """
    row_id, started_at, ended_at, unlocked_ms, offset_ms, flagged = row
    now_suspect = suspect(
        offset_ms=offset_ms,
        started_at=started_at,
        ended_at=ended_at,
        unlocked_ms=unlocked_ms,
        tolerance_ms=tolerance_ms,
    )
    if now_suspect == flagged:
        return
    connection.execute(
        sa.update(table(UsageSession)).where(_sessions.id == row_id).values(clock_suspect=now_suspect)
    )
    if now_suspect:
        gap = span_gap_ms(started_at, ended_at, unlocked_ms)
        log.warning(
            "session %s of gateway %s: the gateway's clock was off (offset %s ms, wall-clock span "
            "off its %d ms duration by %s ms, tolerance %d ms); billed on its durations",
            session_id,
            gateway_slug,
            offset_ms,
            unlocked_ms,
            gap,
            tolerance_ms,
        )


def _collision(db: Session, event: UsageEvent, gateway_slug: str) -> str:
    owner = db.execute(
        sa.select(Gateway.slug, Machine.slug)
        .join(UsageSession, UsageSession.gateway_id == Gateway.id)
        .join(Machine, Machine.id == UsageSession.machine_id)
        .where(UsageSession.session_id == event.session_id)
    ).one_or_none()
    db.rollback()
    if owner is None:  # not reachable while sessions are never deleted
        return f"session {event.session_id} could not be recorded"
    gateway, machine = owner
    if gateway != gateway_slug:
        return f"session {event.session_id} belongs to another gateway"
    return f"session {event.session_id} is on machine {machine}, not {event.machine}"


def _refuse(event: UsageEvent, error: str, gateway_slug: str) -> EventAck:
    log.warning("refused event %s of gateway %s: %s", event.seq, gateway_slug, error)
    return EventAck(seq=event.seq, ok=False, error=error[:ERROR_MAX])

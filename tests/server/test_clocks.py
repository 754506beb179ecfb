"""Gateway clocks: the offset measured from live statuses, and sessions flagged when a clock was off."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import EventKind, GatewayState, GatewayStatus, UsageEvent, encode
from protocol.topics import Channel, topic
from server.billing.monthly import close_month
from server.billing.periods import Period
from server.billing.store import add_price_version
from server.clock import to_ms
from server.clocks import record_offset, suspect
from server.db import SessionFactory
from server.models import BillingSettings, Gateway, UsageCharge, UsageSession
from server.mqtt.handlers import Handlers
from server.usage import ingest
from tests.server.conftest import NOW, Workshop

MINUTE = 60_000


def gateway_clock(session_factory: SessionFactory, slug: str) -> tuple[int | None, datetime | None]:
    with session_factory() as db:
        row = db.execute(
            sa.select(Gateway.clock_offset_ms, Gateway.clock_checked_at).where(Gateway.slug == slug)
        ).one()
        return row[0], row[1]


def test_a_live_online_status_measures_the_gateway_clock_and_a_retained_one_does_not(
    session_factory: SessionFactory, workshop: Workshop, caplog: pytest.LogCaptureFixture
) -> None:
    births: list[str] = []
    handlers = Handlers(workshop.site, session_factory, lambda: NOW, 5000, on_birth=births.append)
    status_topic = topic(workshop.site, workshop.gateway, Channel.STATUS)

    def status(state: GatewayState, boot: int, skew_ms: int, *, retained: bool = False) -> None:
        payload = encode(GatewayStatus(state=state, boot=boot, at_ms=to_ms(NOW) + skew_ms))
        assert handlers.handle(status_topic, payload, retained=retained) is None

    # A retained status may be hours old: it says nothing of the clock, and is no birth.
    status(GatewayState.ONLINE, 1, -3 * 3_600_000, retained=True)
    assert gateway_clock(session_factory, workshop.gateway) == (None, None)
    assert births == []
    caplog.set_level(logging.WARNING)
    status(GatewayState.ONLINE, 2, 10 * MINUTE)
    assert gateway_clock(session_factory, workshop.gateway) == (10 * MINUTE, NOW)
    assert births == [workshop.gateway]
    assert f"gateway {workshop.gateway}: its clock is +600000 ms off the server's" in caplog.text
    # The same boot again (its backlog emptied): measured, but no birth.
    status(GatewayState.ONLINE, 2, 250)
    assert gateway_clock(session_factory, workshop.gateway) == (250, NOW)
    assert births == [workshop.gateway]
    # Lost, then back with the same boot (the network came back): a birth. A will says nothing.
    status(GatewayState.LOST, 2, -9 * MINUTE)
    assert gateway_clock(session_factory, workshop.gateway) == (250, NOW)
    status(GatewayState.ONLINE, 2, -40)
    assert births == [workshop.gateway, workshop.gateway]
    assert gateway_clock(session_factory, workshop.gateway)[0] == -40
    # An unknown gateway: nothing recorded, no birth.
    unknown = topic(workshop.site, "gw-nowhere", Channel.STATUS)
    handlers.handle(unknown, encode(GatewayStatus(state=GatewayState.ONLINE, boot=1, at_ms=to_ms(NOW))))
    assert births == [workshop.gateway, workshop.gateway]


def event(
    seq: int,
    kind: EventKind,
    at: datetime,
    unlocked_ms: int = 0,
    *,
    session_id: str = "s-1",
    badge: str | None = None,
) -> UsageEvent:
    return UsageEvent(
        seq=seq,
        session_id=session_id,
        machine="sewing-1",
        kind=kind,
        at_ms=to_ms(at),
        badge=badge,
        unlocked_ms=unlocked_ms,
        running_ms=unlocked_ms,
    )


def session(db: Session, session_id: str = "s-1") -> UsageSession:
    db.expire_all()
    return db.scalars(sa.select(UsageSession).where(UsageSession.session_id == session_id)).one()


def test_a_session_is_flagged_when_its_gateway_clock_was_off_at_ingest(
    db: Session, workshop: Workshop, caplog: pytest.LogCaptureFixture
) -> None:
    record_offset(db, workshop.site, workshop.gateway, 30 * MINUTE, NOW)
    caplog.set_level(logging.WARNING)
    badge = workshop.alice_badge
    assert ingest(db, workshop.gateway, event(1, EventKind.SESSION_STARTED, NOW, badge=badge), NOW).ok
    found = session(db)
    assert (found.clock_suspect, found.clock_offset_ms) == (True, 30 * MINUTE)
    assert "session s-1 of gateway gw-atelier: the gateway's clock was off (offset 1800000 ms" in caplog.text
    # The clock was fixed meanwhile; the session keeps the worst offset it was seen with.
    record_offset(db, workshop.site, workshop.gateway, 200, NOW)
    ended = event(2, EventKind.SESSION_ENDED, NOW + timedelta(minutes=5), 5 * MINUTE)
    assert ingest(db, workshop.gateway, ended, NOW).ok
    found = session(db)
    assert (found.clock_suspect, found.clock_offset_ms) == (True, 30 * MINUTE)
    # Within the tolerance, and a span that matches the duration: not flagged.
    ingest(db, workshop.gateway, event(3, EventKind.SESSION_STARTED, NOW, session_id="s-2"), NOW)
    end = event(4, EventKind.SESSION_ENDED, NOW + timedelta(minutes=5), 5 * MINUTE + 900, session_id="s-2")
    ingest(db, workshop.gateway, end, NOW)
    found = session(db, "s-2")
    assert (found.clock_suspect, found.clock_offset_ms) == (False, 200)


def test_a_session_whose_wall_clock_jumped_is_flagged_and_tolerance_is_a_setting(
    db: Session, workshop: Workshop
) -> None:
    # 10 minutes of use, its start and end 13 minutes apart: the clock jumped 3 minutes mid-session.
    ingest(db, workshop.gateway, event(1, EventKind.SESSION_STARTED, NOW), NOW)
    ingest(
        db, workshop.gateway, event(2, EventKind.SESSION_ENDED, NOW + timedelta(minutes=13), 10 * MINUTE), NOW
    )
    assert session(db).clock_suspect
    start = event(3, EventKind.SESSION_STARTED, NOW, session_id="s-2")
    end = event(4, EventKind.SESSION_ENDED, NOW + timedelta(minutes=13), 10 * MINUTE, session_id="s-2")
    for each in (start, end):
        ingest(db, workshop.gateway, each, NOW, clock_tolerance_ms=300_000)
    assert not session(db, "s-2").clock_suspect


def test_events_out_of_order_do_not_leave_a_false_flag(db: Session, workshop: Workshop) -> None:
    # The end arrives first: alone, an hour of use in no time at all looks like a jump.
    ingest(
        db, workshop.gateway, event(2, EventKind.SESSION_ENDED, NOW + timedelta(hours=1), 60 * MINUTE), NOW
    )
    assert session(db).clock_suspect
    ingest(db, workshop.gateway, event(1, EventKind.SESSION_STARTED, NOW), NOW)
    assert not session(db).clock_suspect


def test_the_rule() -> None:
    kwargs = {"started_at": NOW, "ended_at": NOW + timedelta(minutes=10), "tolerance_ms": 120_000}
    assert not suspect(offset_ms=None, unlocked_ms=10 * MINUTE, **kwargs)  # type: ignore[arg-type]
    assert not suspect(offset_ms=-120_000, unlocked_ms=8 * MINUTE, **kwargs)  # type: ignore[arg-type]
    assert suspect(offset_ms=-120_001, unlocked_ms=10 * MINUTE, **kwargs)  # type: ignore[arg-type]
    assert suspect(offset_ms=0, unlocked_ms=8 * MINUTE - 1, **kwargs)  # type: ignore[arg-type]
    assert not suspect(offset_ms=0, started_at=NOW, ended_at=None, unlocked_ms=99 * MINUTE)


def test_a_wall_clock_jump_does_not_change_what_is_billed(db: Session, workshop: Workshop) -> None:
    db.add(BillingSettings(name="Atelier", siret="12345678900012"))
    add_price_version(
        db, "standard", code="std-sewing-2026", machine_class="sewing", valid_from=date(2026, 1, 1),
        running_cents=600, running_per=60, session_fee_cents=50,
    )  # fmt: skip
    db.commit()
    day = datetime(2026, 3, 3, 10, tzinfo=NOW.tzinfo)
    minutes = 45 * MINUTE
    # The same 45 minutes of sewing: once with a sound clock, once with a clock that jumped
    # two hours forward mid-session (its end stamped two hours late).
    for seq, (session_id, wall_end) in enumerate(
        [("steady", day + timedelta(minutes=45)), ("jumped", day + timedelta(hours=2, minutes=45))]
    ):
        start = event(2 * seq + 1, EventKind.SESSION_STARTED, day, session_id=session_id,
                      badge=workshop.alice_badge)  # fmt: skip
        end = event(2 * seq + 2, EventKind.SESSION_ENDED, wall_end, minutes, session_id=session_id)
        assert ingest(db, workshop.gateway, start, NOW).ok
        assert ingest(db, workshop.gateway, end, NOW).ok
    assert (session(db, "steady").clock_suspect, session(db, "jumped").clock_suspect) == (False, True)
    close_month(db, Period(2026, 3), date(2026, 4, 1))
    db.commit()
    charges = {
        session_id: (charge.running_minutes, charge.idle_minutes, charge.fee_cents, charge.metered_cents)
        for session_id, charge in db.execute(
            sa.select(UsageSession.session_id, UsageCharge).join(
                UsageCharge, UsageCharge.usage_session_id == UsageSession.id
            )
        )
    }
    assert charges["jumped"] == charges["steady"] == (45, 0, 50, 450)

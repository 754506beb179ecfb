"""A usage session: one member's use of one machine, as metered by its gateway."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, BigPK
from server.models.gateway import Gateway
from server.models.machine import Machine
from server.models.member import Member


class UsageSession(Base):
    """Built from the gateway's events; durations are the largest totals reported.

    ``started_at`` is the earliest event time seen, so that it is right whatever
    order the events arrive in (``session_started`` is the earliest event).
    """

    __tablename__ = "usage_sessions"
    # "When did this member last use a machine requiring this skill?" (expiry by disuse)
    # is asked on badge taps: one index range per machine.
    __table_args__ = (
        Index("ix_usage_sessions_member_id_machine_id_started_at", "member_id", "machine_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    # Made on the gateway, so that a session opened offline has an id at once.
    session_id: Mapped[str] = mapped_column(String(64), unique=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), index=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    badge_uid: Mapped[str | None] = mapped_column(String(32))
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    """The trainer who supervised the session, for a member certified at the supervised level."""
    decided_by: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    unlocked_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    running_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    idle_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    energy_wh: Mapped[float | None]
    """Energy the machine drew during the session, when the gateway measures it."""
    end_reason: Mapped[str | None] = mapped_column(String(40))
    last_event_seq: Mapped[int] = mapped_column(BigInteger)
    clock_suspect: Mapped[bool] = mapped_column(default=False)
    """The gateway's wall clock was off while this session was recorded: its offset from the
    server's exceeded the tolerance when an event was ingested, or the session's wall-clock
    span (``ended_at - started_at``) disagrees with its monotonic ``unlocked_ms``. Its
    moments may be wrong; its durations, which billing uses, are not."""
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    """The gateway's clock offset (gateway minus server, ms) known when the session's events
    were ingested: the one farthest from zero. None: never measured."""

    gateway: Mapped[Gateway] = relationship()
    machine: Mapped[Machine] = relationship()
    member: Mapped[Member | None] = relationship(foreign_keys=[member_id])
    supervisor: Mapped[Member | None] = relationship(foreign_keys=[supervisor_id])

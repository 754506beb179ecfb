"""The manager's badges, machines and gateways.

Enrolling a badge: the member taps it at any gateway; the server refuses it as an unknown
badge and records the decision (:mod:`server.access`); the badge page shows the latest
such tap as it happens (server-sent events) and enrols it for the member chosen. Machines
and gateways: their health as the server last heard it, and lockouts with a reason, which
also send the machine's gateway a lock (as ``PATCH /api/v1/machines/{slug}/lockout`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.orm import Session, selectinload

from protocol.messages import CommandAction, Reason
from server import workshop
from server.api.deps import ClockDep, MqttDep, SessionDep
from server.db import SessionFactory
from server.models import AccessDecision, Badge, Gateway, Machine, Member
from server.web import forms
from server.web.render import fragment, render
from server.web.routes.live import event_stream
from server.web.session import ManagerUser
from server.web.state import live_of

router = APIRouter(prefix="/manage", include_in_schema=False)

UNKNOWN_BADGE_POLL_S = 1.0


@dataclass(frozen=True)
class UnknownTap:
    uid: str
    at: datetime
    gateway: str
    machine: str
    machine_name: str | None


def latest_unknown_badge(db: Session) -> UnknownTap | None:
    """The latest tap of a badge nobody holds (yet): what the manager is about to enrol."""
    decision = db.scalars(
        sa.select(AccessDecision)
        .where(AccessDecision.reason == Reason.UNKNOWN_BADGE.value)
        .order_by(AccessDecision.at.desc(), AccessDecision.id.desc())
        .limit(1)
    ).first()
    if decision is None or db.scalar(sa.select(Badge.id).where(Badge.uid == decision.badge_uid)) is not None:
        return None
    name = db.scalar(sa.select(Machine.name).where(Machine.slug == decision.machine_slug))
    return UnknownTap(decision.badge_uid, decision.at, decision.gateway_slug, decision.machine_slug, name)


@router.get("/badges", response_class=HTMLResponse)
def badges_page(
    *,
    request: Request,
    caller: ManagerUser,
    db: SessionDep,
    clock: ClockDep,
    uid: Annotated[str, Query(max_length=32)] = "",
    member: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    context = {
        "tap": latest_unknown_badge(db),
        "uid": uid.strip().upper(),
        "chosen": member,
        "members": list(
            db.scalars(sa.select(Member).where(Member.erased_at.is_(None)).order_by(Member.name))
        ),
        "badges": list(
            db.scalars(sa.select(Badge).options(selectinload(Badge.member)).order_by(Badge.id.desc()))
        ),
    }
    return render(request, "manage/badges.html", context, caller=caller, db=db, clock=clock)


@router.get("/badges/events")
def badge_events(request: Request, caller: ManagerUser, db: SessionDep, clock: ClockDep) -> StreamingResponse:
    db.close()
    factory: SessionFactory = request.app.state.session_factory

    def render_now() -> str:
        with factory() as session:
            tap = latest_unknown_badge(session)
        return fragment(request, "manage/_unknown_badge.html", {"tap": tap})

    return event_stream(request, render_now, lambda: 0, refresh_s=UNKNOWN_BADGE_POLL_S)


@router.post("/badges")
def enrol_badge(
    *,
    caller: ManagerUser,
    db: SessionDep,
    clock: ClockDep,
    uid: Annotated[str, Form()] = "",
    member_id: Annotated[str, Form()] = "",
) -> Response:
    def act() -> dict[str, object]:
        badge = workshop.enrol_badge(
            db, forms.number(member_id, minimum=1), forms.text(uid, limit=32), now=clock(), by=caller.id
        )
        return {"uid": badge.uid, "name": badge.member.name}

    return forms.attempt(db, act, back="/manage/badges", ok="flash.badge_enrolled")


@router.post("/badges/{uid}/active")
def set_badge_active(
    *,
    uid: str,
    caller: ManagerUser,
    db: SessionDep,
    clock: ClockDep,
    active: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "/manage/badges",
) -> Response:
    def act() -> dict[str, object]:
        badge = workshop.set_badge_active(db, uid, active == "true", by=caller.id, now=clock())
        return {"uid": badge.uid}

    target = back if back.startswith("/manage/") else "/manage/badges"
    return forms.attempt(
        db, act, back=target, ok="flash.badge_enabled" if active == "true" else "flash.badge_disabled"
    )


@router.get("/machines", response_class=HTMLResponse)
def machines_page(request: Request, caller: ManagerUser, db: SessionDep, clock: ClockDep) -> HTMLResponse:
    context = {
        "gateways": list(
            db.scalars(sa.select(Gateway).options(selectinload(Gateway.machines)).order_by(Gateway.slug))
        ),
        "machines": list(
            db.scalars(
                sa.select(Machine)
                .options(selectinload(Machine.gateway), selectinload(Machine.required_skills))
                .order_by(Machine.name)
            )
        ),
        "live": live_of(request).machines(),
        "now": clock(),
    }
    return render(request, "manage/machines.html", context, caller=caller, db=db, clock=clock)


@router.post("/machines/{slug}/lockout")
def set_lockout(
    *,
    request: Request,
    slug: str,
    caller: ManagerUser,
    db: SessionDep,
    clock: ClockDep,
    mqtt: MqttDep,
    locked_out: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    locking = locked_out == "true"
    sent: list[tuple[str, str | None]] = []

    def act() -> dict[str, object]:
        why = forms.text(reason) if locking else None
        machine = workshop.set_lockout(db, slug, locking, why, by=caller.id, now=clock())
        if locking and machine.gateway is not None:
            sent.append((machine.gateway.slug, why))
        return {"name": machine.name}

    response = forms.attempt(
        db, act, back="/manage/machines", ok="flash.locked_out" if locking else "flash.lockout_lifted"
    )
    # After the commit (and only if it was), as the API does: the gateway locks the machine once idle.
    committed = db.scalar(sa.select(Machine.locked_out).where(Machine.slug == slug))
    for gateway, why in sent:
        if mqtt is not None and committed:
            mqtt.send_command(gateway, CommandAction.LOCK, slug, why)
    live_of(request).touch()
    return response

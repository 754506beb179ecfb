"""A member's own pages: sessions with minutes and cost, balance and invoices, certifications,
and why the last tap was refused (what ``/api/v1/me/...`` gives, read the same way)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import selectinload

from server import workshop
from server.api.deps import ClockDep, SessionDep, SettingsDep
from server.billing.invoices import PayerKind
from server.billing.pdf import render_invoice
from server.billing.periods import Period, workshop_day
from server.billing.store import load_invoices
from server.models import AccessDecision, Certification, InvoiceRow, Machine, UsageSession
from server.training import listing
from server.web import forms
from server.web.accounts import balance_of, invoices_of, member_invoices, session_costs
from server.web.i18n import language_of
from server.web.render import render
from server.web.session import MemberUser

router = APIRouter(include_in_schema=False)

NumberPath = Annotated[str, Path(pattern=r"^\d{4}-\d{6}$")]
PAGE = 25


@router.get("/me", response_class=HTMLResponse)
def my_page(
    request: Request, caller: MemberUser, db: SessionDep, clock: ClockDep, settings: SettingsDep
) -> HTMLResponse:
    now = clock()
    me = caller.member
    refusal = db.scalars(
        sa.select(AccessDecision)
        .where(AccessDecision.member_id == me.id, AccessDecision.granted.is_(False))
        .order_by(AccessDecision.at.desc(), AccessDecision.id.desc())
        .limit(1)
    ).first()
    refused_on = None
    if refusal is not None:
        refused_on = db.scalar(sa.select(Machine.name).where(Machine.slug == refusal.machine_slug))
    start, _ = Period.of(workshop_day(now)).bounds()
    month = db.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(UsageSession.running_ms), 0)).where(
            UsageSession.member_id == me.id, UsageSession.started_at >= start
        )
    ).one()
    sessions = _sessions(db, me.id, limit=10, offset=0)
    context = {
        "me": me,
        "balance": balance_of(db, PayerKind.MEMBER, me.id),
        "refusal": refusal,
        "refused_on": refused_on or (refusal.machine_slug if refusal else None),
        "month_sessions": int(month[0]),
        "month_running_ms": int(month[1]),
        "certifications": listing.certifications(db, now, Certification.member_id == me.id),
        "sessions": sessions,
        "costs": session_costs(db, me, sessions),
        "invoices": invoices_of(db, member_invoices(me.id), limit=12),
        "pays_organisation": me.organisation_id is not None,
        "second_factor_machines": list(
            db.scalars(sa.select(Machine).where(Machine.second_factor.is_(True)).order_by(Machine.name))
        ),
        "second_factor_minutes": max(1, settings.second_factor_window_s // 60),
    }
    return render(request, "member/home.html", context, caller=caller, db=db, clock=clock)


def _sessions(db: SessionDep, member_id: int, *, limit: int, offset: int) -> list[UsageSession]:
    return list(
        db.scalars(
            sa.select(UsageSession)
            .options(selectinload(UsageSession.machine), selectinload(UsageSession.supervisor))
            .where(UsageSession.member_id == member_id)
            .order_by(UsageSession.started_at.desc(), UsageSession.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


@router.get("/me/sessions", response_class=HTMLResponse)
def my_sessions(
    request: Request,
    caller: MemberUser,
    db: SessionDep,
    clock: ClockDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    sessions = _sessions(db, caller.id, limit=PAGE + 1, offset=(page - 1) * PAGE)
    shown = sessions[:PAGE]
    context = {
        "sessions": shown,
        "costs": session_costs(db, caller.member, shown),
        "page": page,
        "more": len(sessions) > PAGE,
    }
    return render(request, "member/sessions.html", context, caller=caller, db=db, clock=clock)


@router.get("/me/invoices/{number}.pdf")
def my_invoice_pdf(request: Request, number: NumberPath, caller: MemberUser, db: SessionDep) -> Response:
    """One of the member's own invoices, as the API gives it; 404 for anyone else's."""
    found = load_invoices(db, sa.and_(member_invoices(caller.id), InvoiceRow.number == number))
    if not found:
        return Response(status_code=404)
    language = request.query_params.get("lang") or language_of(request)
    return Response(
        render_invoice(found[0][1], language if language in ("fr", "en") else "fr"),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{number}.pdf"'},
    )


@router.post("/me/at-machine/{slug}")
def confirm_at_machine(
    *, slug: str, caller: MemberUser, db: SessionDep, clock: ClockDep, settings: SettingsDep
) -> Response:
    """The member's "I am at this machine": a machine with a second factor then takes their
    badge once, within the window (docs/security.md, "Badges")."""

    def act() -> dict[str, object]:
        machine = workshop.confirm_at_machine(db, caller.id, slug, now=clock())
        return {"name": machine.name, "minutes": max(1, settings.second_factor_window_s // 60)}

    return forms.attempt(db, act, back="/me", ok="flash.at_machine")

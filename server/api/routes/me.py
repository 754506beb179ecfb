"""What a member sees of themself: who they are, their certifications, why they were refused,
their usage and invoices, and everything the server holds about them as one download."""

from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel

from server import privacy
from server.api.deps import ClockDep, PageDep, SessionDep
from server.api.routes.decisions import DecisionOut
from server.api.routes.invoices import InvoiceOut, Language, NumberPath, pdf_response, summary
from server.api.routes.members import json_download
from server.api.routes.sessions import UsageSessionOut, find_sessions
from server.auth.policy import SignedIn
from server.billing.books import outstanding
from server.billing.store import load_invoices
from server.models import AccessDecision, Certification, InvoiceRow, MemberStatus, Skill, UsageSession
from server.training import listing
from server.training.listing import CertificationView
from server.training.rules import trained_skills

router = APIRouter(prefix="/me", tags=["me"])


class MeOut(BaseModel):
    id: int
    name: str
    email: str | None
    status: MemberStatus
    is_manager: bool
    is_treasurer: bool
    trainer_for: list[str]
    """The skills you may train and certify in."""
    created_at: datetime


@router.get("")
def who_am_i(db: SessionDep, caller: SignedIn, clock: ClockDep) -> MeOut:
    me = caller.member
    trains = trained_skills(db, me.id, clock())
    slugs = db.scalars(sa.select(Skill.slug).where(Skill.id.in_(sorted(trains))).order_by(Skill.slug)).all()
    return MeOut(
        id=me.id,
        name=me.name,
        email=me.email,
        status=me.status,
        is_manager=me.is_manager,
        is_treasurer=me.is_treasurer,
        trainer_for=list(slugs),
        created_at=me.created_at,
    )


@router.get("/certifications")
def my_certifications(
    *, db: SessionDep, page: PageDep, caller: SignedIn, clock: ClockDep, include_revoked: bool = False
) -> list[CertificationView]:
    """Your certifications, newest first: level, who granted it, its expiry date and disuse deadline."""
    criteria = [Certification.member_id == caller.id]
    if not include_revoked:
        criteria.append(Certification.revoked_at.is_(None))
    return listing.certifications(db, clock(), *criteria, limit=page.limit, offset=page.offset)


@router.get("/decisions")
def my_decisions(
    *,
    db: SessionDep,
    page: PageDep,
    caller: SignedIn,
    granted: bool | None = None,
    since: AwareDatetime | None = None,
) -> list[DecisionOut]:
    """Your last badge taps, newest first, each with why it was granted or refused
    (``granted=false``: only the refusals)."""
    query = (
        sa.select(AccessDecision)
        .where(AccessDecision.member_id == caller.id)
        .order_by(AccessDecision.at.desc(), AccessDecision.id.desc())
    )
    if granted is not None:
        query = query.where(AccessDecision.granted == granted)
    if since is not None:
        query = query.where(AccessDecision.at >= since)
    rows = db.scalars(query.limit(page.limit).offset(page.offset))
    return [DecisionOut.model_validate(decision) for decision in rows]


@router.get("/sessions")
def my_sessions(
    *, db: SessionDep, page: PageDep, caller: SignedIn, since: AwareDatetime | None = None
) -> list[UsageSessionOut]:
    """Your usage sessions, newest first: which machine, how long it ran and stood idle."""
    criteria = [UsageSession.member_id == caller.id]
    if since is not None:
        criteria.append(UsageSession.started_at >= since)
    return find_sessions(db, criteria, page)


def _mine(caller: SignedIn) -> sa.ColumnElement[bool]:
    return sa.and_(InvoiceRow.payer_kind == "member", InvoiceRow.payer_id == caller.id)


@router.get("/invoices")
def my_invoices(*, db: SessionDep, page: PageDep, caller: SignedIn) -> list[InvoiceOut]:
    """Your invoices and credit notes (those you pay yourself), newest first, with what is still due."""
    ids = list(
        db.scalars(
            sa.select(InvoiceRow.id)
            .where(_mine(caller))
            .order_by(InvoiceRow.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
    )
    if not ids:
        return []
    due = {o.number: o.due_cents for o in outstanding(db)}
    found = sorted(load_invoices(db, InvoiceRow.id.in_(ids)), key=lambda pair: -pair[0].id)
    return [InvoiceOut.model_validate(summary(invoice, due)) for _, invoice in found]


@router.get(
    "/invoices/{number}.pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}}
)
def my_invoice_pdf(
    *, db: SessionDep, caller: SignedIn, number: NumberPath, lang: Language = "fr"
) -> Response:
    """One of your invoices as a PDF; 404 for one that is not yours."""
    found = load_invoices(db, sa.and_(_mine(caller), InvoiceRow.number == number))
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no invoice {number}")
    return pdf_response(found[0][1], lang)


@router.get("/export", response_class=JSONResponse)
def export_my_data(db: SessionDep, caller: SignedIn, clock: ClockDep) -> JSONResponse:
    """Everything the server holds about you, as a JSON file: your profile, badges,
    certifications, usage, badge taps, sales, plans, invoices, payments, mandates (IBAN masked),
    tokens and sessions (never their secrets), and the audit trail about you."""
    return json_download(privacy.export_member(db, caller.id, now=clock()), caller.id)

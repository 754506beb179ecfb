"""Personal data: everything about a member as one download, and erasing a member.

Erasing pseudonymises what identifies the person (name, e-mail, postal address, partner
association, password, badge numbers, the debtor name and IBAN of their SEPA mandates),
ends their sessions and tokens and suspends them, for good. What the law requires the
association to keep stays as it is: invoices and credit notes as issued (with the name
and address they were issued to), the ledger's postings, payments, the SEPA files sent to
the bank, and the usage sessions and certifications with the member's id (their numbers,
not their name). docs/security.md (section 4.8) gives the legal basis.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server import workshop
from server.audit import audit
from server.auth.sessions import revoke_sessions
from server.auth.tokens import revoke_member_tokens
from server.db import Base, table
from server.models import (
    AccessDecision,
    ApiToken,
    AuditEntry,
    Badge,
    BillingPeriod,
    BillingSettings,
    Certification,
    CertificationEvent,
    ConsumableSaleRow,
    InvoiceLineRow,
    InvoiceRow,
    MandateRow,
    Member,
    MemberPlan,
    MemberStatus,
    PaymentRow,
    PostingRow,
    SaleCharge,
    Skill,
    UsageCharge,
    UsageSession,
    WebSession,
)

EXPORT_FORMAT = "atelier-member-export/1"
RECEIVABLE = "411000"
_SECRET = {"password_hash", "token_hash", "csrf_token"}
"""Never exported: what would let someone in, even to the member themself."""


def erased_name(member_id: int) -> str:
    return f"erased member {member_id}"


def mask_iban(iban: str) -> str:
    """The country, the check digits and the last four characters: enough to recognise an account."""
    return iban[:4] + "*" * max(0, len(iban) - 8) + iban[-4:] if len(iban) > 8 else "*" * len(iban)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


def _row(row: Base, *, without: Iterable[str] = ()) -> dict[str, Any]:
    left_out = _SECRET | set(without)
    return {
        column.key: _plain(getattr(row, column.key))
        for column in sa.inspect(type(row)).columns
        if column.key not in left_out
    }


def _rows(db: Session, query: sa.Select[Any], **options: Any) -> list[dict[str, Any]]:
    return [_row(row, **options) for row in db.scalars(query)]


def export_member(db: Session, member_id: int, *, now: datetime) -> dict[str, Any]:
    """Everything the server holds about a member, as JSON-ready data."""
    member = workshop.get_member(db, member_id)
    certifications = []
    for certification, skill in db.execute(
        sa.select(Certification, Skill.slug)
        .join(Skill, Skill.id == Certification.skill_id)
        .where(Certification.member_id == member.id)
        .order_by(Certification.id)
    ).all():
        events = _rows(
            db,
            sa.select(CertificationEvent)
            .where(CertificationEvent.certification_id == certification.id)
            .order_by(CertificationEvent.id),
        )
        certifications.append(_row(certification) | {"skill": skill, "events": events})
    as_payer = sa.and_(InvoiceRow.payer_kind == "member", InvoiceRow.payer_id == member.id)
    invoices = [
        _row(invoice) | {"lines": [_row(line) for line in invoice.lines]}
        for invoice in db.scalars(sa.select(InvoiceRow).where(as_payer).order_by(InvoiceRow.id))
    ]
    lines_paid_by_others = _rows(
        db,
        sa.select(InvoiceLineRow)
        .join(InvoiceRow, InvoiceRow.id == InvoiceLineRow.invoice_id)
        .where(InvoiceLineRow.member_id == member.id, sa.not_(as_payer))
        .order_by(InvoiceLineRow.id),
    )
    mandates = [
        _row(mandate) | {"iban": mask_iban(mandate.iban)}
        for mandate in db.scalars(
            sa.select(MandateRow)
            .where(MandateRow.payer_kind == "member", MandateRow.payer_id == member.id)
            .order_by(MandateRow.id)
        )
    ]
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "member": _row(member),
        "badges": _rows(db, sa.select(Badge).where(Badge.member_id == member.id).order_by(Badge.id)),
        "certifications": certifications,
        "usage_sessions": _rows(
            db, sa.select(UsageSession).where(UsageSession.member_id == member.id).order_by(UsageSession.id)
        ),
        "access_decisions": _rows(
            db,
            sa.select(AccessDecision)
            .where(AccessDecision.member_id == member.id)
            .order_by(AccessDecision.id),
        ),
        "consumable_sales": _rows(
            db,
            sa.select(ConsumableSaleRow)
            .where(ConsumableSaleRow.member_id == member.id)
            .order_by(ConsumableSaleRow.id),
        ),
        "plan_subscriptions": _rows(
            db, sa.select(MemberPlan).where(MemberPlan.member_id == member.id).order_by(MemberPlan.id)
        ),
        "invoices": invoices,
        "invoice_lines_paid_by_others": lines_paid_by_others,
        "payments": _rows(
            db,
            sa.select(PaymentRow)
            .where(PaymentRow.payer_kind == "member", PaymentRow.payer_id == member.id)
            .order_by(PaymentRow.id),
        ),
        "mandates": mandates,
        "api_tokens": _rows(
            db, sa.select(ApiToken).where(ApiToken.member_id == member.id).order_by(ApiToken.id)
        ),
        "web_sessions": _rows(
            db, sa.select(WebSession).where(WebSession.member_id == member.id).order_by(WebSession.id)
        ),
        "audit_entries": _rows(db, _audit_about(member.id).order_by(AuditEntry.id)),
    }


def _audit_about(member_id: int) -> sa.Select[AuditEntry]:
    """Entries the member made, and those about them, their badges, certifications and tokens."""
    own = {
        "member": sa.select(sa.literal(str(member_id))),
        "badge": sa.select(sa.cast(Badge.id, sa.String)).where(Badge.member_id == member_id),
        "certification": sa.select(sa.cast(Certification.id, sa.String)).where(
            Certification.member_id == member_id
        ),
        "api_token": sa.select(sa.cast(ApiToken.id, sa.String)).where(ApiToken.member_id == member_id),
    }
    return sa.select(AuditEntry).where(
        sa.or_(
            AuditEntry.actor_id == member_id,
            *(
                sa.and_(AuditEntry.subject_type == kind, AuditEntry.subject_id.in_(ids.scalar_subquery()))
                for kind, ids in own.items()
            ),
        )
    )


@dataclass(frozen=True, slots=True)
class Erasure:
    member_id: int
    badges: int
    mandates: int
    tokens: int
    sessions: int


def reasons_not_to_erase(db: Session, member: Member) -> list[str]:
    """What must be settled before a member's personal data can go: empty when nothing.

    Each is something the association still has to invoice or collect with the member's
    name on it, or a machine they are using now.
    """
    reasons = []
    open_session = db.scalar(
        sa.select(UsageSession.session_id).where(
            UsageSession.member_id == member.id, UsageSession.ended_at.is_(None)
        )
    )
    if open_session is not None:
        reasons.append(f"a usage session is still open ({open_session})")
    if db.scalar(sa.select(BillingSettings.id).limit(1)) is None:
        return reasons  # this workshop does not bill: nothing is waiting to be invoiced
    unbilled = db.scalar(
        sa.select(sa.func.count())
        .select_from(UsageSession)
        .outerjoin(UsageCharge, UsageCharge.usage_session_id == UsageSession.id)
        .where(UsageSession.member_id == member.id, UsageCharge.id.is_(None))
    )
    if unbilled:
        reasons.append(f"{unbilled} usage session(s) not invoiced yet: close their month first")
    unsold = db.scalar(
        sa.select(sa.func.count())
        .select_from(ConsumableSaleRow)
        .outerjoin(SaleCharge, SaleCharge.consumable_sale_id == ConsumableSaleRow.id)
        .where(ConsumableSaleRow.member_id == member.id, SaleCharge.invoice_id.is_(None))
    )
    if unsold:
        reasons.append(f"{unsold} consumable sale(s) not invoiced yet: close their month first")
    if _on_a_plan_after_the_last_close(db, member.id):
        reasons.append("they are on a plan in a month not closed yet: take them off it from that month")
    balance = db.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(PostingRow.debit_cents - PostingRow.credit_cents), 0)).where(
            PostingRow.account == RECEIVABLE, PostingRow.auxiliary == f"M{member.id:06d}"
        )
    )
    if balance:
        owed = f"they owe {balance / 100:.2f} EUR" if balance > 0 else f"they hold {-balance / 100:.2f} EUR"
        reasons.append(f"{owed}: settle their balance first")
    return reasons


def _on_a_plan_after_the_last_close(db: Session, member_id: int) -> bool:
    last = db.scalar(sa.select(sa.func.max(BillingPeriod.period)))
    if last is None:
        open_from = date.min
    else:
        year, month = (int(part) for part in last.split("-"))
        open_from = date(year + month // 12, month % 12 + 1, 1)
    choices = db.execute(
        sa.select(MemberPlan.valid_from, MemberPlan.plan_id)
        .where(MemberPlan.member_id == member_id)
        .order_by(MemberPlan.valid_from)
    ).all()
    current = None
    for valid_from, plan_id in choices:
        if valid_from <= open_from:
            current = plan_id
        elif plan_id is not None:
            return True
    return current is not None


def erase_member(db: Session, member_id: int, *, now: datetime, by: int | None) -> Erasure:
    """Pseudonymise a member's personal data, keeping what the law requires (flushed, not committed).

    409 (:class:`~server.workshop.Conflict`) when already erased, when it is the manager
    themself, or while :func:`reasons_not_to_erase` finds something to settle first.
    """
    member = workshop.check_not_erased(workshop.get_member(db, member_id))
    if by == member.id:
        raise workshop.Conflict("a manager does not erase themself: ask another manager")
    reasons = reasons_not_to_erase(db, member)
    if reasons:
        raise workshop.Conflict(f"member {member.id} cannot be erased yet: {'; '.join(reasons)}")
    pseudonym = erased_name(member.id)
    old_name = member.name
    badges = list(db.scalars(sa.select(Badge).where(Badge.member_id == member.id)))
    for badge in badges:
        # A random UID (32 hex digits, longer than any real badge's) frees the physical badge
        # for someone else and cannot be traced back to it, unlike a hash of a 4-byte number.
        new_uid = secrets.token_hex(16).upper()
        for model in (AccessDecision, UsageSession):
            db.execute(
                sa.update(table(model)).where(table(model).c.badge_uid == badge.uid).values(badge_uid=new_uid)
            )
        badge.uid = new_uid
        badge.active = False
    decisions = table(AccessDecision)
    db.execute(
        sa.update(decisions)
        .where(decisions.c.member_id == member.id)
        # Only a granted tap's welcome names the member (server.access).
        .values(message=sa.func.replace(decisions.c.message, f"Welcome, {old_name}", f"Welcome, {pseudonym}"))
    )
    # Mandates are append-only to the ORM (a mandate is replaced by a newer one, never edited):
    # erasure is the one change they take, through Core. The SEPA files already sent, which
    # the books must keep, still hold the IBAN as the bank received it.
    mandates = table(MandateRow)
    mine = db.execute(
        sa.select(mandates.c.id, mandates.c.iban).where(
            mandates.c.payer_kind == "member", mandates.c.payer_id == member.id
        )
    ).all()
    for mandate_id, iban in mine:
        db.execute(
            sa.update(mandates)
            .where(mandates.c.id == mandate_id)
            .values(debtor_name=pseudonym, iban=mask_iban(iban))
        )
    member.name = pseudonym
    member.email = None
    member.address = ""
    member.partner_association = None
    member.password_hash = None
    member.password_changed_at = None
    member.is_manager = False
    member.is_treasurer = False
    member.status = MemberStatus.SUSPENDED
    member.erased_at = now
    tokens = revoke_member_tokens(db, member.id, now=now)
    sessions = revoke_sessions(db, member.id, now=now)
    db.flush()
    erasure = Erasure(member.id, len(badges), len(mine), tokens, sessions)
    audit(
        db, "member.erase", "member", member.id, actor_id=by, at=now,
        details={"badges": erasure.badges, "mandates": erasure.mandates, "tokens": tokens, "sessions": sessions},
    )  # fmt: skip
    return erasure

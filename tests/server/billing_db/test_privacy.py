"""A member's data as one download, and erasure: personal fields pseudonymised, the books intact."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server import workshop as manage
from server.auth.passwords import set_password
from server.auth.scopes import EVERY_SCOPE
from server.auth.sessions import open_session
from server.auth.tokens import create_token, find_token
from server.billing.books import PaymentKind, close_month, record_payment
from server.billing.periods import Period
from server.models import (
    AccessDecision,
    AuditEntry,
    Badge,
    InvoiceLineRow,
    InvoiceRow,
    MandateRow,
    Member,
    MemberStatus,
    PostingRow,
    UsageSession,
    WebSession,
)
from server.privacy import erase_member, export_member, mask_iban, reasons_not_to_erase
from tests.server.billing_db.conftest import IBAN, Books, add_session, at
from tests.server.conftest import NOW, Workshop
from tests.server.test_supervision import tap

LATER = NOW + timedelta(days=60)
MARCH = Period(2026, 3)


def closed_and_paid(db: Session, books: Books) -> str:
    """Alice used a machine in March; March is closed and her invoice paid. Her invoice number."""
    alice = books.workshop.alice
    add_session(db, alice, "sewing-1", at(date(2026, 3, 3)), 45)
    db.commit()
    close_month(db, MARCH, date(2026, 4, 1), now=LATER)
    number = db.scalars(
        sa.select(InvoiceRow.number).where(InvoiceRow.payer_kind == "member", InvoiceRow.payer_id == alice)
    ).one()
    total = db.scalars(sa.select(InvoiceRow.total_cents).where(InvoiceRow.number == number)).one()
    record_payment(
        db,
        kind=PaymentKind.TRANSFER,
        amount_cents=total,
        on=date(2026, 4, 5),
        reference="VIR",
        invoice=number,
    )
    db.commit()
    return number


def test_the_export_holds_everything_about_the_member_and_no_secret(db: Session, books: Books) -> None:
    number = closed_and_paid(db, books)
    alice = books.workshop.alice
    set_password(db, alice, "alice's own passphrase", now=NOW, by=None)
    token = create_token(db, alice, scopes=EVERY_SCOPE, now=NOW, label="phone")
    member = db.get(Member, alice)
    assert member is not None
    opened = open_session(db, member, now=NOW, lifetime=timedelta(hours=1))
    db.commit()
    tap(db, books.workshop, "sewing-1", books.workshop.alice_badge, NOW)
    data = export_member(db, alice, now=LATER)
    text = json.dumps(data)  # JSON as it is: nothing it cannot hold
    assert data["format"] == "atelier-member-export/1"
    assert (data["member"]["id"], data["member"]["name"]) == (alice, "Alice Martin")
    assert [b["uid"] for b in data["badges"]] == [books.workshop.alice_badge]
    assert {c["skill"] for c in data["certifications"]} == {"industrial-sewing", "overlocker"}
    assert all(c["events"][0]["kind"] == "granted" for c in data["certifications"])
    assert len(data["usage_sessions"]) == 1
    assert [d["machine_slug"] for d in data["access_decisions"]] == ["sewing-1"]
    assert [i["number"] for i in data["invoices"]] == [number]
    assert data["invoices"][0]["lines"]
    assert [p["kind"] for p in data["payments"]] == ["transfer"]
    assert [m["iban"] for m in data["mandates"]] == [mask_iban(IBAN)]
    assert [t["label"] for t in data["api_tokens"]] == ["phone"]
    assert len(data["web_sessions"]) == 1
    assert {e["action"] for e in data["audit_entries"]} >= {
        "member.create",
        "badge.enrol",
        "certification.grant",
        "member.password",
        "token.create",
    }
    for secret in ("password_hash", "token_hash", "csrf_token", IBAN, token.token, opened.row.csrf_token):
        assert secret not in text
    with pytest.raises(manage.NotFound):
        export_member(db, 999999, now=LATER)


def test_erasure_waits_for_what_must_be_invoiced_or_collected(db: Session, books: Books) -> None:
    alice = books.workshop.alice
    member = db.get(Member, alice)
    assert member is not None
    assert reasons_not_to_erase(db, member) == []
    session = add_session(db, alice, "sewing-1", at(date(2026, 3, 3)), 45)
    db.execute(sa.update(UsageSession).where(UsageSession.session_id == session).values(ended_at=None))
    assert reasons_not_to_erase(db, member) == [
        f"a usage session is still open ({session})",
        "1 usage session(s) not invoiced yet: close their month first",
    ]
    db.rollback()
    add_session(db, alice, "sewing-1", at(date(2026, 3, 3)), 45)
    db.commit()
    close_month(db, MARCH, date(2026, 4, 1))
    db.commit()
    assert reasons_not_to_erase(db, member) == ["they owe 5.00 EUR: settle their balance first"]
    with pytest.raises(manage.Conflict, match=r"cannot be erased yet: they owe 5\.00 EUR"):
        erase_member(db, alice, now=LATER, by=None)
    bob = db.get(Member, books.workshop.bob)
    assert bob is not None
    assert "they are on a plan in a month not closed yet" in reasons_not_to_erase(db, bob)[0]


def test_erasure_pseudonymises_and_keeps_the_books(db: Session, books: Books, workshop: Workshop) -> None:
    number = closed_and_paid(db, books)
    alice, manager = workshop.alice, workshop.trainer
    tap(db, workshop, "sewing-1", workshop.alice_badge, NOW)
    manage.update_member(db, alice, email="alice@example.org", address="1 rue Haute\n75001 Paris")
    set_password(db, alice, "alice's own passphrase", now=NOW, by=None)
    token = create_token(db, alice, scopes=EVERY_SCOPE, now=NOW)
    member = db.get(Member, alice)
    assert member is not None
    open_session(db, member, now=NOW, lifetime=timedelta(hours=1))
    db.commit()
    postings_before = db.execute(sa.select(PostingRow.auxiliary_name, PostingRow.debit_cents)).all()

    with pytest.raises(manage.Conflict, match="does not erase themself"):
        erase_member(db, manager, now=LATER, by=manager)
    erasure = erase_member(db, alice, now=LATER, by=manager)
    db.commit()
    assert (erasure.badges, erasure.mandates, erasure.tokens, erasure.sessions) == (1, 1, 1, 1)

    db.expire_all()
    member = db.get(Member, alice)
    assert member is not None
    assert (member.name, member.email, member.address, member.password_hash) == (
        f"erased member {alice}", None, "", None,
    )  # fmt: skip
    assert (member.status, member.erased_at) == (MemberStatus.SUSPENDED, LATER)
    badge = db.scalars(sa.select(Badge).where(Badge.member_id == alice)).one()
    assert (badge.active, len(badge.uid)) == (False, 32)
    assert badge.uid != workshop.alice_badge
    uids = db.scalars(sa.select(AccessDecision.badge_uid).where(AccessDecision.member_id == alice)).all()
    assert uids == [badge.uid]
    decision = db.scalars(sa.select(AccessDecision.message).where(AccessDecision.member_id == alice)).one()
    assert "Alice" not in decision
    mandate = db.scalars(sa.select(MandateRow).where(MandateRow.payer_id == alice)).one()
    assert (mandate.debtor_name, mandate.iban) == (f"erased member {alice}", "FR76*******************0189")
    assert find_token(db, token.token, LATER) is None
    assert db.scalars(sa.select(WebSession.revoked_at).where(WebSession.member_id == alice)).one() == LATER
    # What the law keeps: the invoice as issued, its lines, the ledger, the usage with the member id.
    invoice = db.scalars(sa.select(InvoiceRow).where(InvoiceRow.number == number)).one()
    assert invoice.payer_name == "Alice Martin"
    assert (
        db.scalars(
            sa.select(InvoiceLineRow.member_name).where(InvoiceLineRow.invoice_id == invoice.id)
        ).first()
        == "Alice Martin"
    )
    assert db.execute(sa.select(PostingRow.auxiliary_name, PostingRow.debit_cents)).all() == postings_before
    assert db.scalars(sa.select(UsageSession.member_id)).all() == [alice]
    entry = db.scalars(sa.select(AuditEntry).where(AuditEntry.action == "member.erase")).one()
    assert (entry.actor_id, entry.subject_id) == (manager, str(alice))
    assert entry.details == {"badges": 1, "mandates": 1, "tokens": 1, "sessions": 1}
    # Frozen from now on; the physical badge is free for someone else.
    for change in (
        lambda: erase_member(db, alice, now=LATER, by=manager),
        lambda: manage.update_member(db, alice, name="Alice again"),
        lambda: manage.set_member_status(db, alice, MemberStatus.ACTIVE),
        lambda: manage.enrol_badge(db, alice, "0A0B0C0D"),
        lambda: set_password(db, alice, "a password again", now=LATER, by=None),
        lambda: create_token(db, alice, scopes=EVERY_SCOPE, now=LATER),
    ):
        with pytest.raises(manage.Conflict, match="erased"):
            change()
    assert manage.enrol_badge(db, workshop.bob, workshop.alice_badge).uid == workshop.alice_badge


def test_a_workshop_without_billing_erases_at_once(db: Session, workshop: Workshop) -> None:
    add_session(db, workshop.alice, "sewing-1", at(date(2026, 3, 3)), 45)
    erasure = erase_member(db, workshop.alice, now=LATER, by=None)
    assert erasure.badges == 1

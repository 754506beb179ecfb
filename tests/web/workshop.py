"""The workshop the web tests sign in to: one member per role, machines, usage and invoices.

Times are relative to the real clock (the app runs on it): sessions two months ago (a
month closed here already, so the member has an invoice), last month (left open for the
treasurer to close from the page), this month and today.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.messages import CertificationLevel, Reason
from server import workshop
from server.auth.passwords import hash_password
from server.billing import catalogue
from server.billing.books import add_mandate, close_month
from server.billing.invoices import PayerKind
from server.billing.money import Rate
from server.billing.periods import WORKSHOP_TZ, Period, workshop_day
from server.models import (
    AccessDecision,
    BillingSettings,
    Gateway,
    GatewayState,
    Machine,
    Member,
    UsageSession,
)

PASSWORD = "correct-horse-battery"  # noqa: S105 - the test accounts' own
"""Every account's password (10 characters at least)."""

UNKNOWN_BADGE = "0DEADBEEF0"


@cache
def _password_hash() -> str:
    # Hashed once per run: argon2 takes a good part of a second, and every test seeds.
    return hash_password(PASSWORD)


@dataclass(frozen=True)
class Account:
    member_id: int
    name: str
    login: str


@dataclass(frozen=True)
class WebWorkshop:
    site: str
    member: Account  # Chloé: certified, refused once, sessions and an invoice
    trainer: Account  # Maëlle: trainer in industrial sewing
    treasurer: Account  # Lucas
    manager: Account  # Nadia
    trainee: int  # Amina: certified by Maëlle, expiring soon
    newcomer: int  # Hugo: not certified in anything
    closed_period: str  # closed when seeded
    open_period: str  # last month: the treasurer closes it


_ids = itertools.count(1)


def _session(
    db: Session,
    machine: Machine,
    member: int,
    started: datetime,
    minutes: int,
    *,
    supervisor: int | None = None,
) -> None:
    assert machine.gateway_id is not None
    db.add(
        UsageSession(
            session_id=f"web-{next(_ids)}-{started:%Y%m%d%H%M%S}",
            gateway_id=machine.gateway_id,
            machine_id=machine.id,
            member_id=member,
            supervisor_id=supervisor,
            decided_by="server",
            started_at=started,
            ended_at=started + timedelta(minutes=minutes + 5),
            unlocked_ms=(minutes + 5) * 60_000,
            running_ms=minutes * 60_000,
            idle_ms=5 * 60_000,
            end_reason="badge_out",
            last_event_seq=next(_ids),
        )
    )


def _at(period: Period, day: int, hour: int) -> datetime:
    return datetime(period.year, period.month, day, hour, tzinfo=WORKSHOP_TZ).astimezone(UTC)


def seed(db: Session, site: str, now: datetime) -> WebWorkshop:
    today = workshop_day(now)
    this_month = Period.of(today)
    last_month = this_month.previous()
    two_ago = last_month.previous()
    db.add(
        BillingSettings(
            name="Atelier Partagé",
            address="12 rue des Ateliers\n75011 Paris",
            siret="12345678900012",
            vat_exempt=True,
            payment_terms="TVA non applicable, art. 293 B du CGI",
            creditor_id="FR72ZZZ123456",
            iban="FR7630006000011234567890189",
            bic="BNPAFRPP",
            due_days=15,
        )
    )
    for slug, name in (("industrial-sewing", "Couture industrielle"), ("overlocker", "Surjeteuse"),
                       ("fdm-printer", "Impression 3D")):  # fmt: skip
        workshop.add_skill(db, slug, name)
    workshop.add_gateway(db, "textile", site=site, name="Atelier textile")
    workshop.add_gateway(db, "fablab", site=site, name="Fablab")
    db.execute(
        sa.update(Gateway)
        .where(Gateway.slug == "textile")
        .values(state=GatewayState.ONLINE, software="atelier-gateway 0.1.0", boot=3, last_seen_at=now)
    )
    db.execute(
        sa.update(Gateway)
        .where(Gateway.slug == "fablab")
        .values(
            state=GatewayState.LOST,
            software="atelier-gateway 0.1.0",
            boot=1,
            last_seen_at=now - timedelta(hours=2),
        )
    )
    sew = workshop.add_machine(db, "sew-1", "Piqueuse Juki n°1", machine_class="industrial-sewing",
                               gateway="textile", required_skills=["industrial-sewing"])  # fmt: skip
    workshop.add_machine(db, "overlock-1", "Surjeteuse Juki", machine_class="overlocker", gateway="textile",
                         required_skills=["industrial-sewing", "overlocker"])  # fmt: skip
    workshop.add_machine(
        db, "embroidery-1", "Brodeuse Brother", machine_class="embroidery", gateway="textile"
    )
    workshop.set_lockout(db, "embroidery-1", True, "Aiguille cassée")
    printer = workshop.add_machine(db, "printer-1", "Imprimante 3D Prusa", machine_class="fdm-printer",
                                   gateway="fablab", required_skills=["fdm-printer"])  # fmt: skip
    since = two_ago.first_day - timedelta(days=1)
    members = {}
    for key, name, email in (
        ("trainer", "Maëlle Laurent", "maelle@atelier.example"),
        ("member", "Chloé Bernard", "chloe@atelier.example"),
        ("treasurer", "Lucas Martin", "lucas@atelier.example"),
        ("manager", "Nadia Benali", "nadia@atelier.example"),
        ("trainee", "Amina Diallo", None),
        ("newcomer", "Hugo Petit", None),
    ):
        member = workshop.add_member(
            db, name, email=email, now=datetime.combine(since, datetime.min.time(), UTC)
        )
        members[key] = member.id
        if email:
            member.password_hash = _password_hash()
    workshop.enrol_badge(db, members["member"], "04E5F60718")
    workshop.set_member_roles(db, members["treasurer"], treasurer=True)
    workshop.set_member_roles(db, members["manager"], manager=True)
    trainer = members["trainer"]
    workshop.grant_certification(db, trainer, "industrial-sewing", level=CertificationLevel.TRAINER, now=now)
    workshop.grant_certification(
        db, members["member"], "industrial-sewing", granted_by=trainer, now=now - timedelta(days=300),
        expires_at=now + timedelta(days=200),
    )  # fmt: skip
    workshop.grant_certification(
        db, members["trainee"], "industrial-sewing", granted_by=trainer, now=now - timedelta(days=100),
        expires_at=now + timedelta(days=12),
    )  # fmt: skip
    catalogue.add_price_list(db, "standard", "Tarif public", now=now)
    for machine_class in ("industrial-sewing", "overlocker", "embroidery", "fdm-printer"):
        catalogue.add_version(
            db, "standard", catalogue.PriceTerms(running=Rate(600, 60), session_fee_cents=50, vat_rate_bp=0),
            valid_from=since, machine_class=machine_class, now=now,
        )  # fmt: skip
    add_mandate(db, PayerKind.MEMBER, members["member"], reference="MANDAT-CHLOE", debtor="Chloé Bernard",
                iban="FR7630006000011234567890189", signed_on=since)  # fmt: skip
    for day, minutes in ((3, 45), (10, 80)):
        _session(db, sew, members["member"], _at(two_ago, day, 10), minutes)
    for day, minutes in ((5, 60), (12, 30)):
        _session(db, sew, members["member"], _at(last_month, day, 14), minutes)
        _session(db, sew, members["trainee"], _at(last_month, day, 9), minutes, supervisor=trainer)
    _session(db, printer, members["newcomer"], _at(last_month, 20, 16), 120)
    earlier_today = max(
        now - timedelta(minutes=50), datetime.combine(today, datetime.min.time(), WORKSHOP_TZ)
    )
    _session(db, sew, members["member"], earlier_today.astimezone(UTC), 20)
    db.add(
        AccessDecision(
            at=now - timedelta(minutes=10),
            request_id="web-refused",
            gateway_slug="textile",
            machine_slug="overlock-1",
            badge_uid="04E5F60718",
            member_id=members["member"],
            granted=False,
            reason=Reason.NOT_CERTIFIED.value,
            message="Not certified",
        )
    )
    db.flush()
    close_month(db, two_ago, last_month.first_day + timedelta(days=1))
    db.commit()

    def account(key: str, login: str) -> Account:
        name = db.scalar(sa.select(Member.name).where(Member.id == members[key]))
        return Account(members[key], str(name), login)

    return WebWorkshop(
        site=site,
        member=account("member", "chloe@atelier.example"),
        trainer=account("trainer", "maelle@atelier.example"),
        treasurer=account("treasurer", "lucas@atelier.example"),
        manager=account("manager", "nadia@atelier.example"),
        trainee=members["trainee"],
        newcomer=members["newcomer"],
        closed_period=str(two_ago),
        open_period=str(last_month),
    )

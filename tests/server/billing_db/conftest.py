"""A workshop with prices, a plan, an organisation and mandates, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.billing.books import add_mandate
from server.billing.invoices import PayerKind
from server.billing.store import add_price_version
from server.models import (
    BillingSettings,
    Gateway,
    Machine,
    Member,
    MemberPlan,
    Organisation,
    PlanMinutes,
    PlanRow,
    UsageSession,
)
from tests.server.conftest import Workshop

IBAN = "FR7630006000011234567890189"
OTHER_IBAN = "DE89370400440532013000"
CREDITOR_ID = "FR72ZZZ123456"


@dataclass(frozen=True)
class Books:
    workshop: Workshop
    organisation: int
    employee: int  # a member whose usage the organisation pays


_sessions = itertools.count(1)


def add_session(
    db: Session, member: int, machine: str, started_at: datetime, running_min: int, *, idle_min: int = 0
) -> str:
    machine_row = db.scalars(sa.select(Machine).where(Machine.slug == machine)).one()
    gateway = db.scalars(sa.select(Gateway).where(Gateway.id == machine_row.gateway_id)).one()
    session_id = f"s-{next(_sessions)}"
    db.add(
        UsageSession(
            session_id=session_id,
            gateway_id=gateway.id,
            machine_id=machine_row.id,
            member_id=member,
            started_at=started_at,
            ended_at=started_at + timedelta(minutes=running_min + idle_min),
            unlocked_ms=(running_min + idle_min) * 60_000,
            running_ms=running_min * 60_000,
            idle_ms=idle_min * 60_000,
            last_event_seq=1,
        )
    )
    db.flush()
    return session_id


def settings(creditor_id: str = CREDITOR_ID) -> BillingSettings:
    return BillingSettings(
        name="Atelier Partagé",
        address="12 rue des Ateliers\n75011 Paris",
        siret="12345678900012",
        creditor_id=creditor_id,
        iban=IBAN,
        bic="BNPAFRPP",
    )


@pytest.fixture
def books(db: Session, workshop: Workshop) -> Books:
    db.add(settings())
    add_price_version(
        db, "standard", code="std-sewing-2026", machine_class="sewing", valid_from=date(2026, 1, 1),
        running_cents=600, running_per=60, session_fee_cents=50, daily_cap_cents=3000,
    )  # fmt: skip
    add_price_version(
        db, "standard", code="std-printer-2026", machine="printer-1", valid_from=date(2026, 1, 1),
        running_cents=120, running_per=60,
    )  # fmt: skip
    member_list = add_price_version(
        db, "member", code="mbr-sewing-2026", machine_class="sewing", valid_from=date(2026, 1, 1),
        running_cents=300, running_per=60,
    )  # fmt: skip
    plan = PlanRow(code="creator", name="Créateur", monthly_fee_cents=2000)
    db.add(plan)
    db.flush()
    db.add(PlanMinutes(plan_id=plan.id, machine_class="sewing", minutes=60))
    db.add(MemberPlan(member_id=workshop.bob, plan_id=plan.id, valid_from=date(2026, 1, 1)))
    organisation = Organisation(
        name="Coop Textile", address="3 place du Marché", price_list_id=member_list.price_list_id
    )
    db.add(organisation)
    db.flush()
    employee = Member(name="Eve Salariée", organisation_id=organisation.id)
    db.add(employee)
    db.flush()
    add_mandate(
        db, PayerKind.MEMBER, workshop.alice, reference="MANDATE-ALICE", debtor="Alice Martin", iban=IBAN,
        signed_on=date(2025, 12, 1),
    )  # fmt: skip
    add_mandate(
        db, PayerKind.ORGANISATION, organisation.id, reference="MANDATE-COOP", debtor="Coop Textile",
        iban=OTHER_IBAN, signed_on=date(2025, 12, 1), bic="COBADEFFXXX",
    )  # fmt: skip
    db.commit()
    return Books(workshop, organisation.id, employee.id)


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

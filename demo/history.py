"""``atelier demo --history N``: N past months of billing for the demo workshop.

After :func:`demo.workshop.seed`, :func:`seed_history` gives the association its billing
settings (VAT-exempt, with a SEPA creditor identifier), two price lists (``standard``
and the partners' ``member`` list) with a version per machine class, a plan, one
organisation paying for one member, SEPA mandates for most members, and N months of
usage sessions written straight into the database: a few sessions per member and week on
the machines they are certified for. The months before the last full one are closed
(as a treasurer would have done); the last full month is left open, so that
``atelier billing close`` and ``atelier export sepa|fec`` can be run on it at once.

Everything is drawn from a seeded random generator: the same N and the same ``today``
give the same database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from stdnum import iban as stdnum_iban

from demo.workshop import GATEWAYS, MEMBERS, DemoMachine, DemoMember
from server.billing.books import (
    PaymentKind,
    add_mandate,
    close_month,
    export_sepa,
    outstanding,
    record_payment,
    record_sepa_collected,
)
from server.billing.consumables import add_consumable, record_sale
from server.billing.invoices import PayerKind
from server.billing.money import Rate
from server.billing.periods import WORKSHOP_TZ, Period, workshop_day
from server.billing.store import add_price_version, insert_rows
from server.db import make_engine, make_session_factory
from server.models import (
    BillingSettings,
    DirectDebitRow,
    InvoiceRow,
    Machine,
    Member,
    MemberPlan,
    Organisation,
    PlanMinutes,
    PlanRow,
    PriceList,
    SepaFile,
    UsageSession,
)
from server.models.certification import CertificationLevel

ASSOCIATION = "Atelier Partagé des Canuts"
ADDRESS = "12 rue des Tisserands\n69004 Lyon"
SIRET = "73282932000074"
VAT_MENTION = "TVA non applicable, art. 293 B du CGI"
CREDITOR_ID = "FR72ZZZ123456"  # a valid ICS (ISO 7064 mod 97-10), the usual test value
IBAN = "FR7630006000011234567890189"
BIC = "AGRIFRPP"

# Per hour of running time, in cents, and a fee per session; the partners' list is cheaper.
STANDARD_PRICES = {"industrial-sewing": 600, "overlocker": 600, "embroidery": 900, "fdm-printer": 240}
MEMBER_PRICES = {"industrial-sewing": 400, "overlocker": 400, "embroidery": 600, "fdm-printer": 180}
SESSION_FEE_CENTS = 50

ORGANISATION = "Lycée professionnel La Martinière"
ORGANISATION_PAYS_FOR = "Hugo Petit"
PARTNER = ("Léa Moreau", "Les Fils du Quartier")
PLAN_MEMBER = "Amina Diallo"
NO_MANDATE = ("Lucas Martin", "Chloé Bernard", "Sofia Rossi", ORGANISATION_PAYS_FOR)
SEED = 2026

# Sold at the end of a session: (code, name, unit, price per unit, the machine classes, how often).
CONSUMABLES = (
    ("pla-filament", "Filament PLA", "g", Rate(3), ("fdm-printer",), 0.7),
    ("thread-cone", "Cône de fil polyester 5000 m", "piece", Rate(350), ("industrial-sewing", "overlocker"), 0.12),
)  # fmt: skip
# The days after a month's end its books move on: invoiced, collected, paid by transfer.
CLOSED_ON, COLLECTION_ON, COLLECTED_ON, TRANSFER_ON, REJECTED_ON = 2, 10, 12, 20, 15


@dataclass(frozen=True)
class History:
    created: bool  # False: the database had billing settings already, nothing was added
    months: tuple[Period, ...]
    sessions: int
    closed: tuple[Period, ...]
    open_month: Period | None  # the last full month, left for the treasurer to close
    sales: int = 0  # consumables sold at the machines
    sepa_files: tuple[str, ...] = ()  # the message ids of the closed months' collected batches
    rejected: str | None = None  # the invoice whose direct debit came back rejected: due again


def last_full_month(today: date) -> Period:
    return Period.of(today).previous()


def history_months(months: int, today: date) -> tuple[Period, ...]:
    last = last_full_month(today)
    found = [last]
    while len(found) < months:
        found.append(found[-1].previous())
    return tuple(reversed(found))


def seed_history(database_url: str, months: int, *, today: date | None = None) -> History:
    """Add billing and ``months`` months of past usage to the (seeded, migrated) demo database."""
    if months < 1:
        raise ValueError("--history needs at least one month")
    today = today or workshop_day(datetime.now(UTC))
    periods = history_months(months, today)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            if db.scalar(sa.select(sa.func.count()).select_from(BillingSettings)):
                return History(False, periods, 0, (), None)
            _billing(db, periods[0].first_day)
            sessions = _sessions(db, periods)
            sales = _sales(db, sessions, datetime.combine(today, time(), WORKSHOP_TZ))
            files = [_close_and_collect(db, period) for period in periods[:-1]]
            rejected = _reject_one_debit(db, periods[-2], files[-1]) if files else None
            db.commit()
            return History(
                True, periods, len(sessions), periods[:-1], periods[-1], sales, tuple(files), rejected
            )
    finally:
        engine.dispose()


def _member_ids(db: Session) -> dict[str, int]:
    return {name: member_id for member_id, name in db.execute(sa.select(Member.id, Member.name))}


def _debtor_iban(number: int) -> str:
    bban = f"37040044{532013000 + number:010d}"
    return f"DE{stdnum_iban.calc_check_digits('DE00' + bban)}{bban}"


def _billing(db: Session, since: date) -> None:
    db.add(
        BillingSettings(
            name=ASSOCIATION,
            address=ADDRESS,
            siret=SIRET,
            vat_exempt=True,
            payment_terms=f"{VAT_MENTION}. Paiement à 15 jours, par prélèvement SEPA ou virement.",
            creditor_id=CREDITOR_ID,
            iban=IBAN,
            bic=BIC,
            due_days=15,
            default_price_list="standard",
            partner_price_list="member",
        )
    )
    for machine_class, cents in STANDARD_PRICES.items():
        add_price_version(
            db, "standard", code=f"std-{machine_class}-{since:%Y%m}", machine_class=machine_class,
            valid_from=since, running_cents=cents, running_per=60, session_fee_cents=SESSION_FEE_CENTS,
            vat_rate_bp=0,
        )  # fmt: skip
    for machine_class, cents in MEMBER_PRICES.items():
        add_price_version(
            db, "member", code=f"mbr-{machine_class}-{since:%Y%m}", machine_class=machine_class,
            valid_from=since, running_cents=cents, running_per=60, vat_rate_bp=0,
        )  # fmt: skip
    lists = dict(db.execute(sa.select(PriceList.code, PriceList.id)).all())
    db.execute(sa.update(PriceList).where(PriceList.code == "standard").values(name="Tarif public"))
    db.execute(sa.update(PriceList).where(PriceList.code == "member").values(name="Tarif partenaires"))

    members = _member_ids(db)
    plan = PlanRow(code="createur", name="Formule Créateur", monthly_fee_cents=2500, vat_rate_bp=0)
    db.add(plan)
    db.flush()
    db.add(PlanMinutes(plan_id=plan.id, machine_class="industrial-sewing", minutes=240))
    db.add(MemberPlan(member_id=members[PLAN_MEMBER], plan_id=plan.id, valid_from=since))

    organisation = Organisation(
        name=ORGANISATION,
        address="18 place Gabriel Rambaud\n69001 Lyon",
        email="intendance@example.org",
        price_list_id=lists["member"],
    )
    db.add(organisation)
    db.flush()
    db.execute(
        sa.update(Member)
        .where(Member.id == members[ORGANISATION_PAYS_FOR])
        .values(organisation_id=organisation.id)
    )
    db.execute(
        sa.update(Member).where(Member.id == members[PARTNER[0]]).values(partner_association=PARTNER[1])
    )
    signed = since - timedelta(days=20)
    add_mandate(
        db, PayerKind.ORGANISATION, organisation.id, reference="ATELIER-ORG-0001", debtor=ORGANISATION,
        iban=_debtor_iban(0), signed_on=signed,
    )  # fmt: skip
    for number, person in enumerate(MEMBERS, start=1):
        if person.name in NO_MANDATE:
            continue
        add_mandate(
            db, PayerKind.MEMBER, members[person.name], reference=f"ATELIER-MBR-{number:04d}",
            debtor=person.name, iban=_debtor_iban(number), signed_on=signed,
        )  # fmt: skip
    db.flush()


def _usable(person: DemoMember, machine: DemoMachine) -> bool:
    return all(skill in person.skills for skill in machine.skills)


def _sessions(db: Session, periods: tuple[Period, ...]) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    members = _member_ids(db)
    machines = {
        slug: (machine_id, gateway_id)
        for slug, machine_id, gateway_id in db.execute(
            sa.select(Machine.slug, Machine.id, Machine.gateway_id)
        )
    }
    all_machines = [m for g in GATEWAYS for m in g.machines]
    trainer = next(p.name for p in MEMBERS if CertificationLevel.TRAINER in p.skills.values())
    busy: dict[str, list[tuple[datetime, datetime]]] = {m.id: [] for m in all_machines}
    rows: list[dict[str, Any]] = []
    first, last = periods[0].first_day, periods[-1].last_day
    week = first - timedelta(days=first.weekday())
    while week <= last:
        for person in MEMBERS:
            usable = [m for m in all_machines if _usable(person, m)]
            if not usable:
                continue
            for _ in range(rng.randint(1, 4)):
                machine = rng.choice(usable)
                day = week + timedelta(days=rng.randint(1, 5))  # Tuesday to Saturday
                running = rng.randint(10, 120)
                idle = rng.randint(2, 20)
                local = datetime.combine(day, time(9)) + timedelta(minutes=rng.randrange(0, 9 * 60, 5))
                started = local.replace(tzinfo=WORKSHOP_TZ).astimezone(UTC)
                ended = started + timedelta(minutes=running + idle)
                if not first <= day <= last or any(s < ended and started < e for s, e in busy[machine.id]):
                    continue
                busy[machine.id].append((started, ended))
                supervised = person.skills.get(machine.skills[0]) is CertificationLevel.SUPERVISED
                machine_id, gateway_id = machines[machine.id]
                rows.append(
                    {
                        "session_id": f"history-{day:%Y%m%d}-{len(rows) + 1:05d}",
                        "gateway_id": gateway_id,
                        "machine_id": machine_id,
                        "member_id": members[person.name],
                        "badge_uid": person.badge,
                        "supervisor_id": members[trainer] if supervised else None,
                        "decided_by": "server",
                        "started_at": started,
                        "ended_at": ended,
                        "unlocked_ms": (running + idle) * 60_000,
                        "running_ms": running * 60_000,
                        "idle_ms": idle * 60_000,
                        "energy_wh": round(machine.working_a * 230 * running / 60, 1),
                        "end_reason": "badge_out",
                        "last_event_seq": 3,
                    }
                )
        week += timedelta(days=7)
    insert_rows(db, UsageSession, rows)
    return rows


def _sales(db: Session, sessions: list[dict[str, Any]], now: datetime) -> int:
    """Filament or thread sold at the end of some sessions, recorded as the machine would."""
    rng = random.Random(SEED + 1)  # apart from the sessions' draws, which stay as they were
    slugs = {machine_id: slug for slug, machine_id in db.execute(sa.select(Machine.slug, Machine.id))}
    classes = {m.id: m.machine_class for g in GATEWAYS for m in g.machines}
    for code, name, unit, price, _, _ in CONSUMABLES:
        add_consumable(db, code, name, unit, price, vat_rate_bp=0, now=now)
    count = 0
    for session in sessions:
        slug = slugs[session["machine_id"]]
        for code, _, unit, _, sold_for, often in CONSUMABLES:
            if classes[slug] in sold_for and rng.random() < often:
                count += 1
                record_sale(
                    db, consumable=code, quantity=rng.randint(8, 160) if unit == "g" else 1,
                    sold_at=session["ended_at"], member_id=session["member_id"], machine=slug,
                    sale_id=f"history-sale-{count:05d}", now=now,
                )  # fmt: skip
    return count


def _close_and_collect(db: Session, period: Period) -> str:
    """Close ``period``, collect its SEPA batch and the transfers: its books as a treasurer keeps them."""
    last = period.last_day
    closed_on = last + timedelta(days=CLOSED_ON)
    close_month(db, period, closed_on)
    created = datetime.combine(closed_on, time(9), WORKSHOP_TZ)
    message_id, _, _ = export_sepa(db, period, last + timedelta(days=COLLECTION_ON), created)
    record_sepa_collected(db, message_id, last + timedelta(days=COLLECTED_ON))
    due = {o.number: o.due_cents for o in outstanding(db)}
    numbers = db.scalars(
        sa.select(InvoiceRow.number).where(InvoiceRow.period == str(period)).order_by(InvoiceRow.id)
    ).all()
    for number in numbers:
        if due.get(number, 0) > 0:  # no mandate: paid by transfer
            record_payment(
                db, kind=PaymentKind.TRANSFER, amount_cents=due[number], on=last + timedelta(days=TRANSFER_ON),
                reference=f"VIR-{number}", invoice=number,
            )  # fmt: skip
    return message_id


def _reject_one_debit(db: Session, period: Period, message_id: str) -> str | None:
    """The file's first direct debit from a member comes back rejected: their invoice is due again."""
    found = db.execute(
        sa.select(InvoiceRow.number, DirectDebitRow.amount_cents)
        .join(DirectDebitRow, DirectDebitRow.invoice_id == InvoiceRow.id)
        .join(SepaFile, SepaFile.id == DirectDebitRow.sepa_file_id)
        .where(SepaFile.message_id == message_id, InvoiceRow.payer_kind == str(PayerKind.MEMBER))
        .order_by(DirectDebitRow.id)
        .limit(1)
    ).first()
    if found is None:
        return None
    number, amount = found
    record_payment(
        db, kind=PaymentKind.REJECTED, amount_cents=amount, on=period.last_day + timedelta(days=REJECTED_ON),
        reference=f"REJ-{number}", invoice=number,
    )  # fmt: skip
    return str(number)


def describe(history: History) -> list[str]:
    """What was added, for the demo to say."""
    if not history.created:
        return ["Billing history: the database has billing settings already, nothing added."]
    first, last = history.months[0], history.months[-1]
    closed = f"{history.closed[0]} to {history.closed[-1]} closed" if history.closed else "none closed"
    lines = [
        f"Billing history: {history.sessions} usage sessions and {history.sales} consumables sold "
        f"from {first} to {last} ({closed}; {history.open_month} left open), prices, a plan, "
        "an organisation, SEPA mandates."
    ]
    if history.sepa_files:
        rejected = (
            f"; the direct debit of {history.rejected} was rejected: due again" if history.rejected else ""
        )
        lines.append(
            f"Closed months collected: SEPA files {', '.join(history.sepa_files)} recorded as paid, "
            f"transfers from members without a mandate{rejected}."
        )
    return lines


def treasurer_commands(database_url: str, history: History, today: date) -> list[str]:
    """The commands that close the last full month and export it, on this database."""
    period = history.open_month or last_full_month(today)
    env = f"ATELIER_DATABASE_URL={database_url}"
    commands = [
        f"{env} atelier billing close --period {period}",
        f"{env} atelier export sepa --period {period} --out sepa-{period}.xml",
    ]
    if history.created:
        # Once the bank has collected it; the message id numbers every file made so far.
        message_id = f"ATELIER-{period}-{len(history.sepa_files) + 1:03d}"
        commands.append(f"{env} atelier billing pay --sepa-file {message_id}")
    return [
        *commands,
        f"{env} atelier export fec --period {period} --out .",
        f"{env} atelier billing outstanding",
    ]

"""A small textile atelier's prices, members and sessions, for the billing tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from server.billing.invoices import GENESIS_HASH, Invoice, Payer, PayerKind, Seller, build_invoice
from server.billing.lines import ChargeLine, MachineRef, MemberRef, Unit
from server.billing.money import MS_PER_MINUTE, MinuteRounding, Rate
from server.billing.periods import Period
from server.billing.prices import Consumable, Plan, PriceBook, PriceVersion
from server.billing.rating import ConsumableSale, MeteredSession

MARCH = Period(2026, 3)

SEWING = MachineRef("sewing-1", "Piqueuse plate Juki", "industrial-sewing")
SEWING_2 = MachineRef("sewing-2", "Piqueuse plate Brother", "industrial-sewing")
OVERLOCKER = MachineRef("overlocker-1", "Surjeteuse 5 fils", "overlocker")
PRINTER = MachineRef("printer-1", "Imprimante 3D Prusa", "fdm-printer")

ALICE = MemberRef(1, "Alice Martin")
BOB = MemberRef(2, "Bob Lefèvre")
CHLOE = MemberRef(3, "Chloé Cœurdevey")

SELLER = Seller(
    name="Atelier Cœur de Fil",
    address=("12 rue des Tisserands", "69004 Lyon"),
    siret="123 456 789 00012",
    vat_exempt=True,
    payment_terms="Payable par prélèvement SEPA à l'échéance. Pas d'escompte pour paiement anticipé.",
)
SELLER_VAT = Seller(
    name="Manufacture de Proximité SCIC",
    address=("3 quai de la Loire", "44000 Nantes"),
    siret="987 654 321 00021",
    vat_exempt=False,
    vat_number="FR12987654321",
    payment_terms=(
        "Paiement à 15 jours. Pénalités de retard : trois fois le taux d'intérêt légal ; "
        "indemnité forfaitaire pour frais de recouvrement : 40 €."
    ),
)
ALICE_PAYER = Payer(PayerKind.MEMBER, 1, "Alice Martin", ("5 place Sathonay", "69001 Lyon"), "M-0001")
ORG_PAYER = Payer(
    PayerKind.ORGANISATION, 7, "Collectif Mailles & Œuvres", ("8 rue Burdeau", "69001 Lyon"), "O-0007"
)

SEWING_PRICE = PriceVersion(
    id="member-sewing-2026",
    price_list="member",
    machine_class="industrial-sewing",
    valid_from=date(2026, 1, 1),
    running_rate=Rate.per_hour(600),
    idle_rate=Rate.per_hour(90),
    session_fee_cents=50,
    minimum_charge_cents=150,
    increment_minutes=5,
    rounding=MinuteRounding.UP,
    grace_minutes=3,
    daily_cap_cents=2500,
)
OVERLOCKER_PRICE = PriceVersion(
    id="member-overlocker-2026",
    price_list="member",
    machine="overlocker-1",
    valid_from=date(2026, 1, 1),
    running_rate=Rate.per_hour(450),
)
PRINTER_PRICE = PriceVersion(
    id="member-printer-2026",
    price_list="member",
    machine_class="fdm-printer",
    valid_from=date(2026, 1, 1),
    running_rate=Rate.per_hour(90),
    increment_minutes=15,
    rounding=MinuteRounding.NEAREST,
)
BOOK = PriceBook((SEWING_PRICE, OVERLOCKER_PRICE, PRINTER_PRICE))

PLAN = Plan("couture-10h", "Couture 10 h", 3000, {"industrial-sewing": 600})
FILAMENT = Consumable("pla", "Filament PLA", Unit.GRAM, Rate(5, 2))


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A time in Lyon in March 2026 (UTC+1), as an aware UTC datetime."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=1)


def session(
    session_id: str,
    started_at: datetime,
    running_min: float,
    idle_min: float = 0,
    *,
    member: MemberRef = ALICE,
    machine: MachineRef = SEWING,
) -> MeteredSession:
    return MeteredSession(
        session_id=session_id,
        member=member,
        machine=machine,
        started_at=started_at,
        running_ms=round(running_min * MS_PER_MINUTE),
        idle_ms=round(idle_min * MS_PER_MINUTE),
    )


def sale(sale_id: str, sold_at: datetime, grams: int, member: MemberRef = ALICE) -> ConsumableSale:
    return ConsumableSale(sale_id, member, sold_at, FILAMENT, grams, PRINTER)


def invoice_of(
    lines: tuple[ChargeLine, ...],
    number: str = "2026-000001",
    payer: Payer = ALICE_PAYER,
    seller: Seller = SELLER,
    previous_hash: str = GENESIS_HASH,
) -> Invoice:
    return build_invoice(
        number=number,
        issued_on=date(2026, 4, 1),
        due_on=date(2026, 4, 16),
        period=MARCH,
        seller=seller,
        payer=payer,
        lines=lines,
        previous_hash=previous_hash,
    )

"""``atelier billing consumable|sale ...``: the consumables sold at the machines, and their sales.

Registered under ``atelier billing`` by :mod:`server.billing.catalogue_cli`, with the same
rules: every check before any write, one commit, a refusal on one line, exit 1. The work
is done by :mod:`server.billing.consumables`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from server.billing import cli_values as value

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.billing.cli_values import Commands, Refusing
    from server.billing.money import Rate
    from server.models import ConsumableRow


def _price_of(args: argparse.Namespace) -> Rate | None:
    from server.billing.money import parse_rate  # noqa: PLC0415

    if args.price is None:
        return None
    return parse_rate(args.price, value.whole(args.per, "--per"))


def _consumable_line(row: ConsumableRow) -> str:
    from server.billing.money import Rate, format_rate  # noqa: PLC0415

    price = format_rate(Rate(row.unit_cents, row.unit_per), 1, "en")
    return f"{row.code}: {row.name}, {price} per {row.unit}, VAT {row.vat_rate_bp / 100:g} %"


def _consumable_add(db: Session, args: argparse.Namespace) -> int:
    from server.billing.consumables import add_consumable  # noqa: PLC0415

    price = _price_of(args)
    assert price is not None  # --price is required
    row = add_consumable(
        db, args.code, args.name, args.unit, price, vat_rate_bp=value.vat(args.vat), now=value.now()
    )
    print(f"added {_consumable_line(row)}")
    return 0


def _consumable_update(db: Session, args: argparse.Namespace) -> int:
    from server.billing.consumables import update_consumable  # noqa: PLC0415

    vat = value.vat(args.vat) if args.vat is not None else None
    row = update_consumable(
        db, args.code, name=args.name, price=_price_of(args), vat_rate_bp=vat, now=value.now()
    )
    print(f"updated {_consumable_line(row)} (for every sale not invoiced yet)")
    return 0


def _consumable_list(db: Session, args: argparse.Namespace) -> int:
    from server.billing.consumables import consumables  # noqa: PLC0415

    for row in consumables(db):
        print(_consumable_line(row))
    return 0


def _sale_add(db: Session, args: argparse.Namespace) -> int:
    from server.billing.consumables import record_sale  # noqa: PLC0415

    now = value.now()
    sale = record_sale(
        db, consumable=args.consumable, quantity=value.whole(args.quantity, "the quantity"),
        sold_at=value.moment(args.at) if args.at else now, member_id=args.member, badge=args.badge,
        machine=args.machine, sale_id=args.id, now=now,
    )  # fmt: skip
    where = f" on {sale.machine}" if sale.machine else ""
    billed = (
        f"{sale.adjustment_for} is closed: billed with {sale.billed_in} as an adjustment"
        if sale.adjustment_for
        else f"billed with {sale.billed_in}"
    )
    print(
        f"recorded sale {sale.sale_id}: {sale.quantity} {sale.unit} of {sale.consumable_name} for member "
        f"{sale.member_id} ({sale.member_name}){where}, {value.euros(sale.amount_cents)} ({billed})"
    )
    return 0


def _sale_list(db: Session, args: argparse.Namespace) -> int:
    from server.billing.consumables import sales  # noqa: PLC0415
    from server.billing.periods import WORKSHOP_TZ  # noqa: PLC0415

    found = sales(
        db, period=value.month(args.period) if args.period else None, member_id=args.member, limit=10_000
    )
    for sale in found:
        billed = sale.invoice or f"to bill in {sale.billed_in}"
        print(
            f"{sale.sold_at.astimezone(WORKSHOP_TZ):%Y-%m-%d %H:%M}  {sale.member_name}  {sale.machine or '-'}  "
            f"{sale.quantity} {sale.unit} {sale.consumable_name}  {value.euros(sale.amount_cents)}  {billed}"
        )
    print(f"{len(found)} sales, {value.euros(sum(s.amount_cents for s in found))}")
    return 0


def add_consumable_commands(commands: Commands, refusing: Refusing) -> None:
    consumable = value.group(commands, "consumable", "what is sold at the machines: thread, filament...")
    add = consumable.add_parser("add", help="a new consumable")
    add.add_argument("--code", required=True, help="e.g. pla-filament")
    add.add_argument("--name", required=True, help="as invoices print it")
    add.add_argument("--unit", required=True, help="gram, metre or piece")
    add.add_argument("--price", required=True, help="euros per unit (per --per units), e.g. 0,03")
    add.add_argument("--per", default="1", help="the number of units --price is for (default 1)")
    add.add_argument("--vat", default="20", help="VAT rate in per cent (default 20)")
    add.set_defaults(func=refusing(_consumable_add))
    update = consumable.add_parser("update", help="rename or reprice (for every sale not invoiced yet)")
    update.add_argument("--code", required=True)
    update.add_argument("--name")
    update.add_argument("--price")
    update.add_argument("--per", default="1")
    update.add_argument("--vat")
    update.set_defaults(func=refusing(_consumable_update))
    consumable.add_parser("list", help="the catalogue").set_defaults(func=refusing(_consumable_list))

    sale = value.group(commands, "sale", "consumables sold at the machines: invoiced at the month close")
    add = sale.add_parser("add", help="record a sale")
    add.add_argument("--consumable", required=True, help="its code")
    add.add_argument("--quantity", required=True, help="whole units: grams, metres, pieces")
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--member", type=int, help="the member's id")
    who.add_argument("--badge", help="or the UID of the badge they tapped")
    add.add_argument("--machine", help="the machine it was sold at")
    add.add_argument("--at", help="when, YYYY-MM-DD HH:MM workshop time (default now)")
    add.add_argument("--id", help="a unique sale id (default: a new one)")
    add.set_defaults(func=refusing(_sale_add))
    listing = sale.add_parser("list", help="sales, and the invoice each is on")
    listing.add_argument("--period", help="only this month, YYYY-MM")
    listing.add_argument("--member", type=int, help="only this member")
    listing.set_defaults(func=refusing(_sale_list))

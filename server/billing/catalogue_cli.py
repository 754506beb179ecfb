"""``atelier billing price-list|price|plan|org|partner ...``: what the treasurer sets.

Registered by :func:`server.billing.cli.add_commands`, with the same rules: the database of
``ATELIER_DATABASE_URL``, every check before any write, one commit, and a refusal is one
line on stderr, exit 1, nothing changed; values are read by :mod:`server.billing.cli_values`,
so a wrong amount or day is refused the same way. Consumables and sales are in
:mod:`server.billing.consumables_cli`. The work is done by
:mod:`server.billing.catalogue`, :mod:`~server.billing.payers` and
:mod:`~server.billing.consumables`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from server.billing import cli_values as value
from server.billing.consumables_cli import add_consumable_commands

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.billing.cli_values import Commands, Refusing
    from server.billing.money import Rate
    from server.billing.prices import PriceVersion


def _per_hour(rate: Rate) -> str:
    from server.billing.money import format_rate  # noqa: PLC0415

    return f"{format_rate(rate, 60, 'en')}/h"


def _describe(version: PriceVersion) -> str:
    terms = [f"{_per_hour(version.running_rate)} running"]
    if not version.idle_rate.is_free:
        terms.append(f"{_per_hour(version.idle_rate)} idle")
    if version.session_fee_cents:
        terms.append(f"fee {value.euros(version.session_fee_cents)}")
    if version.minimum_charge_cents:
        terms.append(f"minimum {value.euros(version.minimum_charge_cents)}")
    terms.append(f"by {version.increment_minutes} min ({version.rounding})")
    if version.grace_minutes:
        terms.append(f"grace {version.grace_minutes} min")
    if version.daily_cap_cents is not None:
        terms.append(f"cap {value.euros(version.daily_cap_cents)}/day")
    terms.append(f"VAT {version.vat_rate_bp / 100:g} %")
    until = f" until {version.valid_until.isoformat()}" if version.valid_until else ""
    return (
        f"{version.id}  {version.price_list}  {version.target}  from {version.valid_from.isoformat()}{until}: "
        + ", ".join(terms)
    )


# --- price lists and versions ---------------------------------------------------------------------


def _price_list_add(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import add_price_list  # noqa: PLC0415

    row = add_price_list(db, args.code, args.name, now=value.now())
    print(f"price list {row.code} ({row.name}) added: give it prices with 'atelier billing price add'")
    return 0


def _price_add(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import InvalidEntry, PriceTerms, add_version  # noqa: PLC0415
    from server.billing.money import FREE, MinuteRounding  # noqa: PLC0415

    if args.rounding not in {str(r) for r in MinuteRounding}:
        raise InvalidEntry(f"rounding is up, nearest or down, not {args.rounding!r}")
    terms = PriceTerms(
        running=value.rate(args.running, "the running rate"),
        idle=value.rate(args.idle, "the idle rate") if args.idle else FREE,
        session_fee_cents=value.cents(args.session_fee, "a session fee"),
        minimum_charge_cents=value.cents(args.minimum, "a minimum charge"),
        increment_minutes=value.whole(args.increment, "the increment"),
        rounding=MinuteRounding(args.rounding),
        grace_minutes=value.whole(args.grace, "grace"),
        daily_cap_cents=value.cents(args.daily_cap, "a daily cap") if args.daily_cap else None,
        vat_rate_bp=value.vat(args.vat),
    )
    version = add_version(
        db, args.list, terms, valid_from=value.day(args.valid_from),
        valid_until=value.day(args.until) if args.until else None, machine=args.machine,
        machine_class=args.machine_class, code=args.code, now=value.now(),
    )  # fmt: skip
    print(f"added {_describe(version)}")
    return 0


def _price_list(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import price_lists, price_versions  # noqa: PLC0415

    for row, count in price_lists(db):
        if args.list in (None, row.code):
            print(f"{row.code}: {row.name}, {count} versions")
    for version in price_versions(db, args.list):
        print(f"  {_describe(version)}")
    return 0


def _price_show(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import version_on  # noqa: PLC0415
    from server.billing.periods import workshop_day  # noqa: PLC0415

    day = value.day(args.on) if args.on else workshop_day(value.now())
    version = version_on(db, args.list, day, machine=args.machine, machine_class=args.machine_class)
    print(f"on {day.isoformat()}: {_describe(version)}")
    return 0


# --- plans --------------------------------------------------------------------------------------------


def _plan_add(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import InvalidEntry, add_plan  # noqa: PLC0415

    included: dict[str, int] = {}
    for item in args.minutes:
        machine_class, sep, minutes = item.partition("=")
        if not sep or machine_class.strip() in included:
            raise InvalidEntry(f"write included minutes once per class as CLASS=MINUTES, not {item!r}")
        included[machine_class.strip()] = value.whole(minutes, f"included minutes of {machine_class.strip()}")
    row = add_plan(
        db, args.code, args.name, value.cents(args.fee, "a plan's monthly fee"), included, vat_rate_bp=value.vat(args.vat),
        now=value.now(),
    )  # fmt: skip
    minutes = ", ".join(f"{m.minutes} min of {m.machine_class}" for m in row.included) or "no minutes"
    print(f"plan {row.code} ({row.name}) added: {value.euros(row.monthly_fee_cents)} a month, {minutes}")
    return 0


def _plan_list(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import plans  # noqa: PLC0415

    for row in plans(db):
        minutes = ", ".join(f"{m.minutes} min of {m.machine_class}" for m in row.included) or "no minutes"
        print(f"{row.code}: {row.name}, {value.euros(row.monthly_fee_cents)} a month, {minutes}")
    return 0


def _plan_subscribe(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import set_member_plan  # noqa: PLC0415

    first = value.month(args.first_month)
    last = value.month(args.until) if args.until else None
    set_member_plan(db, args.member, args.plan, first, last, now=value.now())
    until = f" to {last} included" if last else ""
    print(f"member {args.member} is on plan {args.plan} from {first}{until}")
    return 0


def _plan_unsubscribe(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import set_member_plan  # noqa: PLC0415

    first = value.month(args.first_month)
    set_member_plan(db, args.member, None, first, now=value.now())
    print(f"member {args.member} has no plan from {first}")
    return 0


def _plan_subscriptions(db: Session, args: argparse.Namespace) -> int:
    from server.billing.catalogue import member_plans  # noqa: PLC0415

    for row, plan in member_plans(db, args.member):
        print(f"member {row.member_id}  from {row.valid_from:%Y-%m}  {plan or '(no plan)'}")
    return 0


# --- organisations and partners --------------------------------------------------------------------------


def _org_add(db: Session, args: argparse.Namespace) -> int:
    from server.billing.payers import add_organisation  # noqa: PLC0415

    row = add_organisation(
        db,
        args.name,
        address="\n".join(args.address),
        email=args.email,
        price_list=args.price_list,
        now=value.now(),
    )
    print(f"organisation {row.id} ({row.name}) added, on the {args.price_list or 'default'} price list")
    return 0


def _org_list(db: Session, args: argparse.Namespace) -> int:
    from server.billing.payers import organisations  # noqa: PLC0415

    for view in organisations(db):
        paid = ", ".join(f"{m.id} {m.name}" for m in view.members) or "nobody yet"
        row = view.organisation
        print(f"{row.id}  {row.name}  ({view.price_list or 'default'} prices)  pays for: {paid}")
    return 0


def _org_attach(db: Session, args: argparse.Namespace) -> int:
    from server.billing.payers import attach_member  # noqa: PLC0415

    member = attach_member(db, args.organisation, args.member, now=value.now())
    print(f"organisation {args.organisation} now pays for member {member.id} ({member.name})")
    return 0


def _org_detach(db: Session, args: argparse.Namespace) -> int:
    from server.billing.payers import detach_member  # noqa: PLC0415

    member = detach_member(db, args.member, organisation_id=args.organisation, now=value.now())
    print(f"member {member.id} ({member.name}) pays for their own usage again")
    return 0


def _partner_set(db: Session, args: argparse.Namespace) -> int:
    from server.billing.payers import set_partner  # noqa: PLC0415

    member = set_partner(db, args.member, args.association, now=value.now())
    print(f"member {member.id} ({member.name}) is a member of {member.partner_association}: member prices")
    return 0


def _partner_clear(db: Session, args: argparse.Namespace) -> int:
    from server.billing.payers import set_partner  # noqa: PLC0415

    member = set_partner(db, args.member, None, now=value.now())
    print(f"member {member.id} ({member.name}) is no longer a partner member")
    return 0


def _partner_list(db: Session, args: argparse.Namespace) -> int:
    from server.billing.payers import partner_members  # noqa: PLC0415

    for member in partner_members(db):
        print(f"{member.id}  {member.name}  {member.partner_association}")
    return 0


# --- the parsers ----------------------------------------------------------------------------------------


def _target(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--machine", help="a machine's id, e.g. sew-1")
    which.add_argument("--class", dest="machine_class", help="a machine class, e.g. industrial-sewing")


def add_catalogue_commands(commands: Commands, refusing: Refusing) -> None:
    """Register the treasurer's catalogue commands under ``atelier billing``."""
    lists = value.group(commands, "price-list", "price lists: standard, member (partners), an organisation's")
    add = lists.add_parser("add", help="a new, empty price list")
    add.add_argument("--code", required=True, help="e.g. standard, member")
    add.add_argument("--name", required=True, help="e.g. 'Tarif public'")
    add.set_defaults(func=refusing(_price_list_add))

    prices = value.group(
        commands, "price", "price versions: a machine's or class's price in a list, from a day"
    )
    add = prices.add_parser("add", help="a new price version (a price change is a new version from a day)")
    add.add_argument("--list", required=True, help="the price list's code")
    _target(add)
    add.add_argument("--from", dest="valid_from", required=True, help="the first day, YYYY-MM-DD")
    add.add_argument("--until", help="the first day it no longer applies (default: until the next version)")
    add.add_argument("--running", required=True, help="running rate, e.g. 6,00/h or 0,10/min")
    add.add_argument("--idle", help="idle (setup) rate, e.g. 1,20/h (default free)")
    add.add_argument("--session-fee", default="0", help="euros, e.g. 0,50")
    add.add_argument("--minimum", default="0", help="minimum charge of a session, euros")
    add.add_argument("--increment", default="1", help="minutes billed by whole increments of (default 1)")
    add.add_argument("--rounding", default="up", help="up (default), nearest or down")
    add.add_argument("--grace", default="0", help="free minutes at the start of every session")
    add.add_argument("--daily-cap", help="the most a member pays a machine a day, euros")
    add.add_argument("--vat", default="20", help="VAT rate in per cent (default 20; none if exempt)")
    add.add_argument("--code", help="the version's id on invoices (default: list-target-YYYYMMDD)")
    add.set_defaults(func=refusing(_price_add))
    listing = prices.add_parser("list", help="price lists and their versions")
    listing.add_argument("--list", help="only this price list")
    listing.set_defaults(func=refusing(_price_list))
    show = prices.add_parser("show", help="the version that applies to a machine or class on a day")
    show.add_argument("--list", required=True)
    _target(show)
    show.add_argument("--on", help="the day, YYYY-MM-DD (default today)")
    show.set_defaults(func=refusing(_price_show))

    _add_plan_commands(commands, refusing)
    _add_payer_commands(commands, refusing)
    add_consumable_commands(commands, refusing)


def _add_plan_commands(commands: Commands, refusing: Refusing) -> None:
    plan = value.group(commands, "plan", "plans: a monthly fee with minutes included, and who is on them")
    add = plan.add_parser("add", help="a new plan")
    add.add_argument("--code", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--fee", required=True, help="monthly fee, euros")
    add.add_argument(
        "--minutes", action="append", default=[], help="CLASS=MINUTES included a month; repeat per class"
    )
    add.add_argument("--vat", default="20", help="VAT rate in per cent (default 20)")
    add.set_defaults(func=refusing(_plan_add))
    plan.add_parser("list", help="every plan").set_defaults(func=refusing(_plan_list))
    subscribe = plan.add_parser("subscribe", help="put a member on a plan from a month")
    subscribe.add_argument("--member", type=int, required=True)
    subscribe.add_argument("--plan", required=True, help="the plan's code")
    subscribe.add_argument("--from", dest="first_month", required=True, help="the first month, YYYY-MM")
    subscribe.add_argument("--until", help="the last month on the plan, included (YYYY-MM)")
    subscribe.set_defaults(func=refusing(_plan_subscribe))
    unsubscribe = plan.add_parser("unsubscribe", help="no plan for a member from a month")
    unsubscribe.add_argument("--member", type=int, required=True)
    unsubscribe.add_argument(
        "--from", dest="first_month", required=True, help="the first month without, YYYY-MM"
    )
    unsubscribe.set_defaults(func=refusing(_plan_unsubscribe))
    subscriptions = plan.add_parser("subscriptions", help="who chose which plan from when")
    subscriptions.add_argument("--member", type=int, help="only this member")
    subscriptions.set_defaults(func=refusing(_plan_subscriptions))


def _add_payer_commands(commands: Commands, refusing: Refusing) -> None:
    org = value.group(commands, "org", "organisations paying for their members' usage, at their own prices")
    add = org.add_parser("add", help="a new organisation")
    add.add_argument("--name", required=True)
    add.add_argument("--address", action="append", default=[], help="one line; repeat for more")
    add.add_argument("--email")
    add.add_argument("--price-list", help="the code of the list it pays (default: the default list)")
    add.set_defaults(func=refusing(_org_add))
    org.add_parser("list", help="organisations and whom they pay for").set_defaults(func=refusing(_org_list))
    attach = org.add_parser("attach", help="the organisation pays for a member (all usage not yet invoiced)")
    attach.add_argument("--org", dest="organisation", type=int, required=True)
    attach.add_argument("--member", type=int, required=True)
    attach.set_defaults(func=refusing(_org_attach))
    detach = org.add_parser("detach", help="the member pays for their own usage again")
    detach.add_argument("--member", type=int, required=True)
    detach.add_argument("--org", dest="organisation", type=int, help="check it is this organisation")
    detach.set_defaults(func=refusing(_org_detach))

    partner = value.group(commands, "partner", "members of partner associations: they pay member prices")
    put = partner.add_parser("set", help="a member belongs to a partner association")
    put.add_argument("--member", type=int, required=True)
    put.add_argument("--association", required=True)
    put.set_defaults(func=refusing(_partner_set))
    clear = partner.add_parser("clear", help="a member no longer belongs to one")
    clear.add_argument("--member", type=int, required=True)
    clear.set_defaults(func=refusing(_partner_clear))
    partner.add_parser("list", help="partner members").set_defaults(func=refusing(_partner_list))

"""``atelier billing ...`` and ``atelier export ...``: the treasurer's commands (wired into cli/main.py).

Prices, plans, organisations, partners, consumables and sales are set by the commands of
:mod:`server.billing.catalogue_cli`, registered here under ``atelier billing`` too.

Every command works on the database of ``ATELIER_DATABASE_URL`` (migrated first), does
its checks before writing anything, and commits once: a refused step prints one line
saying why, exits 1 and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from server.billing.catalogue_cli import add_catalogue_commands
from server.cli import _database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

Command = Callable[[argparse.Namespace], int]


def _today() -> date:
    from server.billing.periods import workshop_day  # noqa: PLC0415
    from server.clock import utc_now  # noqa: PLC0415

    return workshop_day(utc_now())


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: write YYYY-MM-DD") from error


def _cents(text: str) -> int:
    from server.billing.errors import InvalidAmount  # noqa: PLC0415
    from server.billing.money import parse_cents  # noqa: PLC0415

    try:
        return parse_cents(text)
    except InvalidAmount as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _refusing(action: Callable[[Session, argparse.Namespace], int]) -> Command:
    """Run ``action`` in one transaction; a billing or workshop error is one line, exit 1, nothing saved."""

    def run(args: argparse.Namespace) -> int:
        from server.billing.errors import BillingError  # noqa: PLC0415
        from server.workshop import WorkshopError  # noqa: PLC0415

        try:
            with _database() as db:
                try:
                    code = action(db, args)
                except BaseException:
                    db.rollback()
                    raise
                db.commit()
                return code
        except (BillingError, WorkshopError, OSError, argparse.ArgumentTypeError) as error:
            print(f"atelier: {error}", file=sys.stderr)
            return 1

    return run


def _close(db: Session, args: argparse.Namespace) -> int:
    from server.billing.books import close_month  # noqa: PLC0415
    from server.billing.money import format_cents  # noqa: PLC0415
    from server.billing.periods import Period  # noqa: PLC0415

    result = close_month(db, Period.parse(args.period), args.issued_on or _today())
    invoices = result.closed.invoices
    total = sum(invoice.total_cents for invoice in invoices)
    numbers = f" ({invoices[0].number} to {invoices[-1].number})" if invoices else ""
    print(
        f"closed {args.period}: {len(invoices)} invoices{numbers}, {format_cents(total, 'en')}, "
        f"{result.sessions} sessions of which {result.late_sessions} late (adjustments)"
    )
    return 0


def _verify(db: Session, args: argparse.Namespace) -> int:
    from server.billing.books import verify  # noqa: PLC0415

    count = verify(db)
    print(f"the chain of {count} invoices and credit notes is intact")
    return 0


def _credit_note(db: Session, args: argparse.Namespace) -> int:
    from server.billing.books import issue_credit_note  # noqa: PLC0415

    note = issue_credit_note(db, args.invoice, args.issued_on or _today())
    print(f"credit note {note.number} reverses invoice {args.invoice} ({note.total_cents / 100:.2f} EUR)")
    return 0


def _pay(db: Session, args: argparse.Namespace) -> int:
    from server.billing.books import PaymentKind, record_payment, record_sepa_collected  # noqa: PLC0415
    from server.billing.invoices import PayerKind  # noqa: PLC0415

    on = args.on or _today()
    if args.sepa_file:
        rows = record_sepa_collected(db, args.sepa_file, on)
        print(f"recorded {len(rows)} direct debits of {args.sepa_file} as collected on {on.isoformat()}")
        return 0
    if args.amount is None:
        raise argparse.ArgumentTypeError("say --amount (or --sepa-file for a collected batch)")
    payer = None
    if args.member is not None:
        payer = (PayerKind.MEMBER, args.member)
    elif args.organisation is not None:
        payer = (PayerKind.ORGANISATION, args.organisation)
    row = record_payment(
        db,
        kind=PaymentKind(args.kind),
        amount_cents=args.amount,
        on=on,
        reference=args.reference or f"{args.kind}-{on.isoformat()}",
        invoice=args.invoice,
        payer=payer,
    )
    what = "rejected direct debit" if row.kind == PaymentKind.REJECTED else f"{row.kind} payment"
    print(f"recorded {what} {row.id}: {row.amount_cents / 100:.2f} EUR")
    return 0


def _outstanding(db: Session, args: argparse.Namespace) -> int:
    from server.billing.books import outstanding  # noqa: PLC0415

    rows = outstanding(db)
    for row in rows:
        print(f"{row.number}  due {row.due_on.isoformat()}  {row.due_cents / 100:>10.2f} EUR  {row.payer}")
    print(f"{len(rows)} invoices outstanding, {sum(r.due_cents for r in rows) / 100:.2f} EUR")
    return 0


def _balances(db: Session, args: argparse.Namespace) -> int:
    from server.billing.books import balance_report  # noqa: PLC0415

    for account, name, total in balance_report(db):
        print(f"{account}  {total / 100:>10.2f} EUR  {name}")
    return 0


def _pdf(db: Session, args: argparse.Namespace) -> int:
    from server.billing.pdf import render_invoice  # noqa: PLC0415
    from server.billing.store import find_invoice  # noqa: PLC0415

    _, invoice = find_invoice(db, args.invoice)
    Path(args.out).write_bytes(render_invoice(invoice, args.lang))
    print(f"wrote {args.out}")
    return 0


def _settings(db: Session, args: argparse.Namespace) -> int:
    from server.billing.sepa import valid_bic, valid_creditor_id, valid_iban  # noqa: PLC0415
    from server.models import BillingSettings  # noqa: PLC0415

    db.add(
        BillingSettings(
            name=args.name,
            address="\n".join(args.address),
            siret=args.siret,
            vat_exempt=not args.vat_number,
            vat_number=args.vat_number or "",
            payment_terms=args.payment_terms,
            creditor_id=valid_creditor_id(args.creditor_id) if args.creditor_id else None,
            iban=valid_iban(args.iban) if args.iban else None,
            bic=valid_bic(args.bic) if args.bic else None,
            due_days=args.due_days,
            minimum_balance_cents=args.minimum_balance,
        )
    )
    print(f"billing settings saved for {args.name}")
    return 0


def _mandate(db: Session, args: argparse.Namespace) -> int:
    from server.billing.books import add_mandate  # noqa: PLC0415
    from server.billing.invoices import PayerKind  # noqa: PLC0415

    kind = PayerKind.ORGANISATION if args.organisation is not None else PayerKind.MEMBER
    payer_id = args.organisation if args.organisation is not None else args.member
    row = add_mandate(
        db, kind, payer_id, reference=args.reference, debtor=args.debtor, iban=args.iban,
        signed_on=args.signed_on, bic=args.bic or "",
    )  # fmt: skip
    print(f"mandate {row.reference} stored for {kind} {payer_id}")
    return 0


def _export_sepa(db: Session, args: argparse.Namespace) -> int:
    from server.billing.books import export_sepa  # noqa: PLC0415
    from server.billing.periods import Period  # noqa: PLC0415
    from server.clock import utc_now  # noqa: PLC0415

    period = Period.parse(args.period)
    message_id, document, count = export_sepa(db, period, args.collection_date or _today(), utc_now())
    Path(args.out).write_bytes(document)
    print(f"wrote {args.out}: {count} direct debits, message id {message_id} (valid pain.008.001.02)")
    return 0


def _export_fec(db: Session, args: argparse.Namespace) -> int:
    import sqlalchemy as sa  # noqa: PLC0415

    from server.billing.fec import fec_bytes, fec_filename  # noqa: PLC0415
    from server.billing.periods import Period  # noqa: PLC0415
    from server.billing.store import current_settings, load_entries  # noqa: PLC0415
    from server.models import JournalEntryRow  # noqa: PLC0415

    period = Period.parse(args.period)
    entries = load_entries(
        db, sa.and_(JournalEntryRow.on >= period.first_day, JournalEntryRow.on <= period.last_day)
    )
    out = Path(args.out)
    if out.is_dir():
        out = out / fec_filename(current_settings(db).siret, period.last_day)
    out.write_bytes(fec_bytes(entries))
    print(f"wrote {out}: {len(entries)} entries")
    return 0


def _export_csv(db: Session, args: argparse.Namespace) -> int:
    from server.billing.csv_export import invoice_lines_csv, rated_sessions_csv  # noqa: PLC0415
    from server.billing.monthly import rated_sessions  # noqa: PLC0415
    from server.billing.periods import Period  # noqa: PLC0415
    from server.billing.store import load_invoices  # noqa: PLC0415
    from server.models import InvoiceRow  # noqa: PLC0415

    period = Period.parse(args.period)
    if args.what == "sessions":
        text = rated_sessions_csv(rated_sessions(db, period), args.lang)
    else:
        invoices = [invoice for _, invoice in load_invoices(db, InvoiceRow.period == str(period))]
        text = invoice_lines_csv(invoices, args.lang)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``billing`` and ``export`` on the ``atelier`` command line."""
    billing = subparsers.add_parser("billing", help="month close, invoices, credit notes, payments")
    commands = billing.add_subparsers(dest="billing_command", required=True, metavar="COMMAND")

    close = commands.add_parser("close", help="turn a month's sessions, plans and sales into invoices")
    close.add_argument("--period", required=True, help="the month, YYYY-MM")
    close.add_argument("--issued-on", type=_day, help="the invoices' date (default today)")
    close.set_defaults(func=_refusing(_close))

    verify = commands.add_parser("verify", help="check the invoices' hash chain and numbering")
    verify.set_defaults(func=_refusing(_verify))

    note = commands.add_parser("credit-note", help="reverse an invoice entirely")
    note.add_argument("--invoice", required=True, help="its number, e.g. 2026-000042")
    note.add_argument("--issued-on", type=_day, help="the credit note's date (default today)")
    note.set_defaults(func=_refusing(_credit_note))

    pay = commands.add_parser("pay", help="record a payment, a collected SEPA file or a rejected debit")
    pay.add_argument("--invoice", help="the invoice it settles")
    pay.add_argument("--member", type=int, help="or the member it is from (a prepaid top-up)")
    pay.add_argument("--organisation", type=int, help="or the organisation it is from")
    pay.add_argument("--amount", type=_cents, help="in euros, e.g. 12,50")
    pay.add_argument("--kind", default="transfer", choices=["transfer", "cash", "card", "sepa", "rejected"])
    pay.add_argument("--sepa-file", help="a SEPA file's message id: record all its debits as collected")
    pay.add_argument("--on", type=_day, help="the day (default today)")
    pay.add_argument("--reference", help="the bank's reference")
    pay.set_defaults(func=_refusing(_pay))

    owed = commands.add_parser("outstanding", help="invoices not yet paid in full")
    owed.set_defaults(func=_refusing(_outstanding))
    balances = commands.add_parser("balances", help="every payer's balance in the ledger")
    balances.set_defaults(func=_refusing(_balances))

    pdf = commands.add_parser("pdf", help="write an invoice or credit note as a PDF")
    pdf.add_argument("--invoice", required=True)
    pdf.add_argument("--out", required=True)
    pdf.add_argument("--lang", default="fr", choices=["fr", "en"])
    pdf.set_defaults(func=_refusing(_pdf))

    _add_setup_commands(commands)
    add_catalogue_commands(commands, _refusing)
    _add_export_commands(subparsers)


def _add_setup_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    settings = commands.add_parser("settings", help="the association as it invoices and collects")
    settings.add_argument("--name", required=True)
    settings.add_argument("--address", action="append", default=[], help="one line; repeat for more")
    settings.add_argument("--siret", required=True)
    settings.add_argument("--vat-number", help="if subject to VAT")
    settings.add_argument("--payment-terms", default="")
    settings.add_argument("--creditor-id", help="SEPA creditor identifier (ICS)")
    settings.add_argument("--iban")
    settings.add_argument("--bic")
    settings.add_argument("--due-days", type=int, default=15)
    settings.add_argument("--minimum-balance", type=_cents, default=0, help="for prepaid members")
    settings.set_defaults(func=_refusing(_settings))

    mandate = commands.add_parser("mandate", help="store a payer's SEPA mandate")
    who = mandate.add_mutually_exclusive_group(required=True)
    who.add_argument("--member", type=int)
    who.add_argument("--organisation", type=int)
    mandate.add_argument("--reference", required=True)
    mandate.add_argument("--debtor", required=True, help="the account holder's name")
    mandate.add_argument("--iban", required=True)
    mandate.add_argument("--bic")
    mandate.add_argument("--signed-on", type=_day, required=True)
    mandate.set_defaults(func=_refusing(_mandate))


def _add_export_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = subparsers.add_parser("export", help="SEPA direct debits, FEC and CSV for a month")
    kinds = export.add_subparsers(dest="export_command", required=True, metavar="KIND")
    sepa = kinds.add_parser("sepa", help="pain.008.001.02 collecting the month's invoices")
    sepa.add_argument("--period", required=True)
    sepa.add_argument("--out", required=True)
    sepa.add_argument("--collection-date", type=_day, help="default today")
    sepa.set_defaults(func=_refusing(_export_sepa))
    fec = kinds.add_parser("fec", help="the accounting entries of the month (FEC)")
    fec.add_argument("--period", required=True)
    fec.add_argument("--out", required=True, help="a file, or a directory for <SIREN>FEC<date>.txt")
    fec.set_defaults(func=_refusing(_export_fec))
    csv = kinds.add_parser("csv", help="the month's invoice lines, or its rated sessions")
    csv.add_argument("--period", required=True)
    csv.add_argument("--out", required=True)
    csv.add_argument("--what", default="lines", choices=["lines", "sessions"])
    csv.add_argument("--lang", default="fr", choices=["fr", "en"])
    csv.set_defaults(func=_refusing(_export_csv))

"""Invoices and credit notes: lines with VAT, gapless numbers per year, and a hash chain.

**Numbers** are ``YYYY-NNNNNN`` (``2026-000042``): one series for invoices and credit
notes, starting at 1 each calendar year of issue, without gaps.

**VAT** is computed per line, ROUND_HALF_UP, at the line's rate; an association not
subject to VAT (``Seller.vat_exempt``) charges none and its invoices carry the mention
"TVA non applicable, art. 293 B du CGI". The totals are the sums of the lines:
``total_excl_vat_cents`` = Σ amounts, ``vat_cents`` = Σ line VAT, ``total_cents`` = both.

**The hash chain.** Each invoice's ``hash`` is the lower-case hex SHA-256 of its
canonical serialisation (:func:`canonical_bytes`), which includes the previous
invoice's hash (:data:`GENESIS_HASH` for the first one ever). The serialisation is
JSON (RFC 8259) of the object below, keys sorted, no whitespace (separators ``,`` and
``:``), non-ASCII characters written as themselves, UTF-8 encoded::

    {"v": 1, "number", "kind" ("invoice" | "credit_note"), "issued_on", "due_on"
     (YYYY-MM-DD), "period" (YYYY-MM), "currency": "EUR", "credited_invoice" ("" or a
     number), "seller": {"name", "address": [lines], "siret", "vat_number",
     "vat_exempt", "payment_terms"}, "payer": {"kind", "id", "name", "address",
     "reference", "email"}, "lines": [{"position", "kind", "member_id", "member_name",
     "machine", "machine_name", "day" (YYYY-MM-DD or null), "item", "quantity", "unit",
     "unit_price" ({"cents", "per"} or null), "amount_cents", "vat_rate_bp",
     "vat_cents", "price_version", "adjustment_for" (YYYY-MM or null)}, ...],
     "total_excl_vat_cents", "vat_cents", "total_cents", "previous_hash"}

Amounts are JSON integers of cents. Every stored field is in it, so changing any of
them, or removing or reordering an invoice, breaks :func:`verify_chain`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from server.billing.errors import ChainBroken, InvalidInvoice
from server.billing.lines import ChargeLine, LineKind, Unit
from server.billing.money import Rate, vat_on
from server.billing.periods import Period

GENESIS_HASH = "0" * 64
"""The ``previous_hash`` of the first invoice ever issued."""
SERIALISATION_VERSION = 1
VAT_EXEMPT_MENTION = "TVA non applicable, art. 293 B du CGI"

_NUMBER = re.compile(r"^(\d{4})-(\d{6})$")
_string = encode_basestring
"""How ``json.dumps(..., ensure_ascii=False)`` writes a string (quotes included)."""


class InvoiceKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class PayerKind(StrEnum):
    MEMBER = "member"
    ORGANISATION = "organisation"


@dataclass(frozen=True, slots=True)
class Seller:
    """The association issuing the invoices, as it stood on the day of issue."""

    name: str
    address: tuple[str, ...]
    siret: str
    vat_exempt: bool = True
    vat_number: str = ""
    payment_terms: str = ""
    """Printed at the foot: due date wording, late-payment penalties for organisations."""


@dataclass(frozen=True, slots=True)
class Payer:
    """Who pays: a member for their own use, or an organisation for its members'."""

    kind: PayerKind
    id: int
    name: str
    address: tuple[str, ...] = ()
    reference: str = ""
    """The member or organisation number printed on the invoice."""
    email: str = ""


class InvoiceLine(NamedTuple):
    """A line as issued. A named tuple, not a dataclass: a month close issues millions."""

    position: int
    kind: LineKind
    member_id: int
    member_name: str
    quantity: int
    unit: Unit
    unit_price: Rate | None
    amount_cents: int  # excluding VAT
    vat_rate_bp: int
    vat_cents: int
    machine: str = ""
    machine_name: str = ""
    day: date | None = None
    item: str = ""
    price_version: str = ""
    adjustment_for: Period | None = None

    @property
    def total_cents(self) -> int:
        return self.amount_cents + self.vat_cents


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    kind: InvoiceKind
    issued_on: date
    due_on: date
    period: Period
    seller: Seller
    payer: Payer
    lines: tuple[InvoiceLine, ...]
    total_excl_vat_cents: int
    vat_cents: int
    total_cents: int
    previous_hash: str
    hash: str
    credited_invoice: str = ""

    @property
    def year(self) -> int:
        return parse_number(self.number)[0]


def format_number(year: int, sequence: int) -> str:
    if not (1 <= sequence <= 999_999 and 2000 <= year <= 9999):
        raise InvalidInvoice(f"no invoice number for year {year}, sequence {sequence}")
    return f"{year:04d}-{sequence:06d}"


def parse_number(number: str) -> tuple[int, int]:
    """``"2026-000042"`` as ``(2026, 42)``."""
    match = _NUMBER.match(number)
    if match is None or int(match[2]) == 0:
        raise InvalidInvoice(f"{number!r} is not an invoice number (YYYY-NNNNNN)")
    return int(match[1]), int(match[2])


def next_number(last: str | None, year: int) -> str:
    """The number after ``last`` (the last one issued, any year) for an invoice issued in ``year``."""
    if last is None:
        return format_number(year, 1)
    last_year, sequence = parse_number(last)
    if last_year > year:
        raise InvalidInvoice(f"cannot issue in {year}: invoice {last} is already issued in {last_year}")
    return format_number(year, sequence + 1 if last_year == year else 1)


def check_numbering(numbers: Iterable[str], first: str | None = None) -> None:
    """Refuse a gap, a repeat or a step back in ``numbers`` (in order of issue).

    ``first`` is the number before the first one given (None: they start the series).
    """
    last = first
    for number in numbers:
        expected = next_number(last, parse_number(number)[0])
        if number != expected:
            raise InvalidInvoice(f"invoice {number} follows {last or 'nothing'}: expected {expected}")
        last = number


def _lines_json(lines: Iterable[InvoiceLine]) -> str:
    """The lines' objects in the canonical JSON, comma-separated, exactly as ``json.dumps`` writes them.

    Written out by hand because a close hashes millions of lines and a dict per line
    through ``json.dumps`` was a third of its time; a test holds it to ``json.dumps``.
    Strings go through the encoder ``json.dumps`` itself uses, and amounts are ints,
    written as ``json.dumps`` writes them. What consecutive lines share (the member,
    machine, day and price version of one day's lines) is written once for them.
    """
    parts: list[str] = []
    last: tuple[Any, ...] = ()
    head = day_part = machine_part = version_part = ""
    kinds: dict[tuple[str, str, str], tuple[str, str]] = {}
    prices: dict[int, str] = {}  # by id(): a Rate hashes slowly, and the lines hold theirs
    for line in lines:
        (position, kind, member_id, member_name, quantity, unit, price, amount, rate, vat, machine, machine_name,
         day, item, version, adjustment) = line  # fmt: skip
        shared = (member_id, member_name, machine, machine_name, day, version, adjustment)
        if shared != last:
            last = shared
            head = f'{{"adjustment_for":{_string(str(adjustment)) if adjustment else "null"},"amount_cents":'
            day_part = f',"day":{_string(day.isoformat()) if day else "null"},"item":'
            machine_part = (
                f',"machine":{_string(machine)},"machine_name":{_string(machine_name)},"member_id":{member_id},'
                f'"member_name":{_string(member_name)},"position":'
            )
            version_part = f',"price_version":{_string(version)},"quantity":'
        kind_part = kinds.get((item, kind, unit))
        if kind_part is None:
            kind_part = kinds[(item, kind, unit)] = (
                f'{_string(item)},"kind":{_string(kind)}',
                f',"unit":{_string(unit)},"unit_price":',
            )
        if price is None:
            price_part = "null"
        elif (price_part := prices.get(id(price), "")) == "":
            price_part = prices[id(price)] = f'{{"cents":{price.cents},"per":{price.per}}}'
        parts.append(
            f"{head}{amount}{day_part}{kind_part[0]}{machine_part}{position}{version_part}{quantity}"
            f'{kind_part[1]}{price_part},"vat_cents":{vat},"vat_rate_bp":{rate}}}'
        )
    return ",".join(parts)


def canonical_bytes(invoice: Invoice) -> bytes:
    """The exact bytes the invoice's hash is taken over (see the module's documentation)."""
    seller, payer = invoice.seller, invoice.payer
    before_lines = {
        "credited_invoice": invoice.credited_invoice,
        "currency": "EUR",
        "due_on": invoice.due_on.isoformat(),
        "issued_on": invoice.issued_on.isoformat(),
        "kind": str(invoice.kind),
    }
    after_lines = {
        "number": invoice.number,
        "payer": {
            "kind": str(payer.kind),
            "id": payer.id,
            "name": payer.name,
            "address": list(payer.address),
            "reference": payer.reference,
            "email": payer.email,
        },
        "period": str(invoice.period),
        "previous_hash": invoice.previous_hash,
        "seller": {
            "name": seller.name,
            "address": list(seller.address),
            "siret": seller.siret,
            "vat_number": seller.vat_number,
            "vat_exempt": seller.vat_exempt,
            "payment_terms": seller.payment_terms,
        },
        "total_cents": invoice.total_cents,
        "total_excl_vat_cents": invoice.total_excl_vat_cents,
        "v": SERIALISATION_VERSION,
        "vat_cents": invoice.vat_cents,
    }
    # The keys sort as written: those before "lines", "lines", those after it. Each part is
    # encoded on its own: the lines are mostly ASCII, copied as they are.
    return b"".join(
        (
            _dumps(before_lines)[:-1].encode("utf-8"),
            b',"lines":[',
            _lines_json(invoice.lines).encode("utf-8"),
            b"],",
            _dumps(after_lines)[1:].encode("utf-8"),
        )
    )


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def invoice_hash(invoice: Invoice) -> str:
    return hashlib.sha256(canonical_bytes(invoice)).hexdigest()


def _sealed(invoice: Invoice) -> Invoice:
    return replace(invoice, hash=invoice_hash(invoice))


def _totals(lines: Sequence[InvoiceLine]) -> tuple[int, int, int]:
    excl = sum(line.amount_cents for line in lines)
    vat = sum(line.vat_cents for line in lines)
    return excl, vat, excl + vat


def _invoice_lines(lines: Iterable[ChargeLine], vat_exempt: bool) -> Iterator[InvoiceLine]:
    """Rated lines as invoice lines, numbered from 1: VAT at each line's rate, or none when exempt."""
    for position, line in enumerate(lines, start=1):
        amount, machine, member = line.amount_cents, line.machine, line.member
        rate = 0 if vat_exempt else line.vat_rate_bp
        yield _new(InvoiceLine, (
            position, line.kind, member.id, member.name, line.quantity, line.unit, line.unit_price, amount, rate,
            vat_on(amount, rate) if rate else 0, machine.slug if machine else "", machine.name if machine else "",
            line.day, line.item, line.price_version, line.adjustment_for,
        ))  # fmt: skip


_new = tuple.__new__


def build_invoice(
    *,
    number: str,
    issued_on: date,
    due_on: date,
    period: Period,
    seller: Seller,
    payer: Payer,
    lines: Iterable[ChargeLine],
    previous_hash: str,
) -> Invoice:
    """An invoice of ``lines`` (in their rated order), numbered, totalled and chained."""
    if parse_number(number)[0] != issued_on.year:
        raise InvalidInvoice(f"invoice {number} is not numbered in its year of issue ({issued_on.year})")
    if due_on < issued_on:
        raise InvalidInvoice(f"invoice {number} would be due before it is issued")
    invoice_lines = tuple(_invoice_lines(lines, seller.vat_exempt))
    excl, vat, total = _totals(invoice_lines)
    if total < 0:
        raise InvalidInvoice(f"invoice {number} would total {total} cents: a credit note reverses an invoice")
    invoice = Invoice(
        number, InvoiceKind.INVOICE, issued_on, due_on, period, seller, payer, invoice_lines,
        excl, vat, total, previous_hash, hash="",
    )  # fmt: skip
    return _sealed(invoice)


def credit_note(original: Invoice, *, number: str, issued_on: date, previous_hash: str) -> Invoice:
    """A credit note reversing ``original`` entirely: the same lines, negated."""
    if original.kind is not InvoiceKind.INVOICE:
        raise InvalidInvoice(f"{original.number} is a credit note: only an invoice is reversed")
    if parse_number(number)[0] != issued_on.year or issued_on < original.issued_on:
        raise InvalidInvoice(f"credit note {number} cannot be issued on {issued_on.isoformat()}")
    lines = tuple(
        line._replace(quantity=-line.quantity, amount_cents=-line.amount_cents, vat_cents=-line.vat_cents)
        for line in original.lines
    )
    excl, vat, total = _totals(lines)
    note = replace(
        original,
        number=number,
        kind=InvoiceKind.CREDIT_NOTE,
        issued_on=issued_on,
        due_on=issued_on,
        lines=lines,
        total_excl_vat_cents=excl,
        vat_cents=vat,
        total_cents=total,
        previous_hash=previous_hash,
        credited_invoice=original.number,
    )
    return _sealed(note)


def verify_chain(
    invoices: Iterable[Invoice], previous_hash: str = GENESIS_HASH, previous_number: str | None = None
) -> str:
    """Check every invoice, in order of issue, against its hash and the one before; the last hash.

    Raises :class:`ChainBroken` at the first invoice whose content, totals, link or
    number is not what was sealed. ``previous_hash`` and ``previous_number`` (the last
    invoice already verified) let a check start mid-chain; from the start, the first
    invoice must be number 1 of its year.
    """
    last_number = previous_number
    check_first = previous_number is not None or previous_hash == GENESIS_HASH
    for invoice in invoices:
        if invoice.previous_hash != previous_hash:
            raise ChainBroken(f"invoice {invoice.number}: it does not follow the invoice before it")
        if invoice_hash(invoice) != invoice.hash:
            raise ChainBroken(f"invoice {invoice.number}: its content does not match its hash")
        if _totals(invoice.lines) != (invoice.total_excl_vat_cents, invoice.vat_cents, invoice.total_cents):
            raise ChainBroken(f"invoice {invoice.number}: its totals are not the sums of its lines")
        if last_number is not None or check_first:
            try:
                check_numbering([invoice.number], first=last_number)
            except InvalidInvoice as error:
                raise ChainBroken(str(error)) from error
        last_number, previous_hash = invoice.number, invoice.hash
    return previous_hash

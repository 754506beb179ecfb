"""Invoices: VAT per line, totals that are the sums of the lines, gapless numbers, a hash chain."""

import dataclasses
import hashlib
import json
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.billing.errors import ChainBroken, InvalidInvoice
from server.billing.invoices import (
    GENESIS_HASH,
    Invoice,
    InvoiceKind,
    PayerKind,
    build_invoice,
    canonical_bytes,
    check_numbering,
    credit_note,
    format_number,
    invoice_hash,
    next_number,
    parse_number,
    verify_chain,
)
from server.billing.lines import ChargeLine, LineKind, Unit
from server.billing.money import Rate
from server.billing.periods import Period
from server.billing.rating import plan_fee_line, rate_usage
from tests.server.billing.sample import (
    ALICE,
    ALICE_PAYER,
    BOOK,
    PLAN,
    SELLER,
    SELLER_VAT,
    at,
    invoice_of,
    session,
)
from tests.server.billing.strategies import charge_lines, invoice_chains, payers, sellers


def test_numbers_are_gapless_per_year() -> None:
    assert format_number(2026, 42) == "2026-000042"
    assert parse_number("2026-000042") == (2026, 42)
    assert next_number(None, 2026) == "2026-000001"
    assert next_number("2026-000041", 2026) == "2026-000042"
    assert next_number("2026-000417", 2027) == "2027-000001"
    with pytest.raises(InvalidInvoice):
        next_number("2027-000001", 2026)
    check_numbering(["2026-000001", "2026-000002", "2027-000001", "2027-000002"])
    check_numbering(["2026-000008"], first="2026-000007")


@pytest.mark.parametrize(
    "numbers",
    [
        ["2026-000002"],
        ["2026-000001", "2026-000003"],
        ["2026-000001", "2026-000001"],
        ["2026-000001", "2027-000002"],
    ],
)
def test_a_gap_or_repeat_in_the_numbers_is_refused(numbers: list[str]) -> None:
    with pytest.raises(InvalidInvoice):
        check_numbering(numbers)


@pytest.mark.parametrize("number", ["2026-42", "F2026-000001", "2026-000000", "2026-0000001", ""])
def test_a_number_that_is_not_one_is_refused(number: str) -> None:
    with pytest.raises(InvalidInvoice):
        parse_number(number)


def test_an_exempt_association_charges_no_vat() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=62)], BOOK)
    invoice = invoice_of((plan_fee_line(ALICE, PLAN, Period(2026, 3)), *rating.lines))
    assert [line.position for line in invoice.lines] == [1, 2, 3]
    assert all(line.vat_rate_bp == 0 and line.vat_cents == 0 for line in invoice.lines)
    assert (invoice.total_excl_vat_cents, invoice.vat_cents, invoice.total_cents) == (3650, 0, 3650)
    assert invoice.kind is InvoiceKind.INVOICE
    assert invoice.previous_hash == GENESIS_HASH
    assert invoice.hash == hashlib.sha256(canonical_bytes(invoice)).hexdigest()


def test_vat_is_computed_per_line_and_the_lines_sum_to_the_totals() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=4), session("t", at(3, 9), running_min=8)], BOOK)
    invoice = invoice_of(rating.lines, seller=SELLER_VAT)
    assert [(line.amount_cents, line.vat_cents) for line in invoice.lines] == [
        (50, 10),
        (50, 10),
        (50, 10),
        (50, 10),
        (50, 10),
        (50, 10),
    ]
    assert (invoice.total_excl_vat_cents, invoice.vat_cents, invoice.total_cents) == (300, 60, 360)


@given(st.lists(charge_lines(), max_size=12), sellers, payers)
def test_the_lines_sum_to_the_invoice_total(lines: list[Any], seller: Any, payer: Any) -> None:
    invoice = invoice_of(tuple(lines), seller=seller, payer=payer)
    assert invoice.total_excl_vat_cents == sum(line.amount_cents for line in invoice.lines)
    assert invoice.vat_cents == sum(line.vat_cents for line in invoice.lines)
    assert invoice.total_cents == sum(line.total_cents for line in invoice.lines)
    assert invoice.total_cents >= 0
    assert all(line.vat_cents >= 0 for line in invoice.lines)
    if seller.vat_exempt:
        assert invoice.vat_cents == 0


def test_the_canonical_serialisation_is_documented_json() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=62)], BOOK)
    invoice = invoice_of(rating.lines, seller=SELLER_VAT)
    raw = canonical_bytes(invoice)
    data = json.loads(raw)
    assert raw == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert data["v"] == 1
    assert data["number"] == "2026-000001"
    assert data["issued_on"] == "2026-04-01"
    assert data["period"] == "2026-03"
    assert data["previous_hash"] == GENESIS_HASH
    assert data["lines"][0]["unit_price"] == {"cents": 600, "per": 60}
    assert data["lines"][0]["day"] == "2026-03-02"
    assert data["seller"]["vat_exempt"] is False
    assert data["total_cents"] == 780
    assert "Proximité".encode() in raw  # UTF-8, not \u escapes


def documented_json(invoice: Invoice) -> bytes:
    """The serialisation as docs/billing.md describes it, through json.dumps."""
    seller, payer = invoice.seller, invoice.payer
    lines = [
        {
            "position": line.position,
            "kind": str(line.kind),
            "member_id": line.member_id,
            "member_name": line.member_name,
            "machine": line.machine,
            "machine_name": line.machine_name,
            "day": line.day.isoformat() if line.day else None,
            "item": line.item,
            "quantity": line.quantity,
            "unit": str(line.unit),
            "unit_price": {"cents": line.unit_price.cents, "per": line.unit_price.per}
            if line.unit_price
            else None,
            "amount_cents": line.amount_cents,
            "vat_rate_bp": line.vat_rate_bp,
            "vat_cents": line.vat_cents,
            "price_version": line.price_version,
            "adjustment_for": str(line.adjustment_for) if line.adjustment_for else None,
        }
        for line in invoice.lines
    ]
    data = {
        "v": 1,
        "number": invoice.number,
        "kind": str(invoice.kind),
        "issued_on": invoice.issued_on.isoformat(),
        "due_on": invoice.due_on.isoformat(),
        "period": str(invoice.period),
        "currency": "EUR",
        "credited_invoice": invoice.credited_invoice,
        "seller": {
            "name": seller.name,
            "address": list(seller.address),
            "siret": seller.siret,
            "vat_number": seller.vat_number,
            "vat_exempt": seller.vat_exempt,
            "payment_terms": seller.payment_terms,
        },
        "payer": {
            "kind": str(payer.kind),
            "id": payer.id,
            "name": payer.name,
            "address": list(payer.address),
            "reference": payer.reference,
            "email": payer.email,
        },
        "lines": lines,
        "total_excl_vat_cents": invoice.total_excl_vat_cents,
        "vat_cents": invoice.vat_cents,
        "total_cents": invoice.total_cents,
        "previous_hash": invoice.previous_hash,
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@settings(max_examples=200)
@given(invoice_chains(max_size=3))
def test_the_canonical_bytes_are_exactly_json_dumps_of_the_documented_object(chain: list[Invoice]) -> None:
    # Lines are written out by hand for speed: any name, item or amount, escaped as json.dumps does.
    for invoice in chain:
        assert canonical_bytes(invoice) == documented_json(invoice)
    note = credit_note(chain[0], number="2026-000999", issued_on=date(2026, 4, 2), previous_hash=GENESIS_HASH)
    assert canonical_bytes(note) == documented_json(note)


def test_a_credit_note_reverses_an_invoice() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=62)], BOOK)
    invoice = invoice_of(rating.lines, seller=SELLER_VAT)
    note = credit_note(invoice, number="2026-000002", issued_on=date(2026, 4, 20), previous_hash=invoice.hash)
    assert note.kind is InvoiceKind.CREDIT_NOTE
    assert note.credited_invoice == invoice.number
    assert [line.amount_cents for line in note.lines] == [-line.amount_cents for line in invoice.lines]
    assert note.total_cents == -invoice.total_cents
    assert verify_chain([invoice, note]) == note.hash
    with pytest.raises(InvalidInvoice):
        credit_note(note, number="2026-000003", issued_on=date(2026, 4, 20), previous_hash=note.hash)
    with pytest.raises(InvalidInvoice):
        credit_note(invoice, number="2026-000003", issued_on=date(2026, 3, 20), previous_hash=note.hash)


def test_an_invoice_that_cannot_be_right_is_refused() -> None:
    with pytest.raises(InvalidInvoice):
        invoice_of((), number="2025-000001")  # not numbered in its year of issue
    with pytest.raises(InvalidInvoice):
        build_invoice(
            number="2026-000001",
            issued_on=date(2026, 4, 1),
            due_on=date(2026, 3, 31),
            period=Period(2026, 3),
            seller=SELLER,
            payer=ALICE_PAYER,
            lines=(),
            previous_hash=GENESIS_HASH,
        )
    cap_alone = ChargeLine(LineKind.DAILY_CAP, ALICE, 1, Unit.DAY, Rate(100), -100, 0)
    with pytest.raises(InvalidInvoice):
        invoice_of((cap_alone,))


_MUTATIONS: tuple[tuple[type, Any], ...] = (
    (bool, lambda v: not v),
    (int, lambda v: v + 1),
    (str, lambda v: v + "x"),
    (date, lambda v: v + timedelta(days=1)),
    (Period, lambda v: v.next()),
    (Rate, lambda v: Rate(v.cents + 1, v.per)),
    (tuple, lambda v: (*v, "x")),
    (type(None), lambda v: Period(2025, 1)),
)


def _mutated(value: Any) -> Any:
    """A different value of the same kind, for every kind of field an invoice stores."""
    for kind, change in _MUTATIONS:
        if isinstance(value, kind):
            return change(value)
    raise AssertionError(f"no mutation for {value!r}")


_ENUM_MUTATIONS: dict[type, Any] = {
    InvoiceKind: lambda v: InvoiceKind.CREDIT_NOTE if v is InvoiceKind.INVOICE else InvoiceKind.INVOICE,
    PayerKind: lambda v: PayerKind.ORGANISATION if v is PayerKind.MEMBER else PayerKind.MEMBER,
    LineKind: lambda v: LineKind.RUNNING if v is not LineKind.RUNNING else LineKind.IDLE,
    Unit: lambda v: Unit.GRAM if v is not Unit.GRAM else Unit.MINUTE,
}


def mutations(invoice: Invoice) -> list[tuple[str, Invoice]]:
    """The invoice with one stored field changed, for every field, nested ones included."""
    result: list[tuple[str, Invoice]] = []
    for field in dataclasses.fields(invoice):
        value = getattr(invoice, field.name)
        if field.name in {"seller", "payer"}:
            for inner in dataclasses.fields(value):
                changed = dataclasses.replace(
                    value, **{inner.name: _change(getattr(value, inner.name), inner.name)}
                )
                result.append(
                    (f"{field.name}.{inner.name}", dataclasses.replace(invoice, **{field.name: changed}))
                )
        elif field.name == "lines":
            for index, line in enumerate(value):
                for name in line._fields:
                    changed = line._replace(**{name: _change(getattr(line, name), name)})
                    lines = (*value[:index], changed, *value[index + 1 :])
                    result.append((f"lines[{index}].{name}", dataclasses.replace(invoice, lines=lines)))
        else:
            result.append(
                (field.name, dataclasses.replace(invoice, **{field.name: _change(value, field.name)}))
            )
    return result


def _change(value: Any, name: str) -> Any:
    for kind, change in _ENUM_MUTATIONS.items():
        if isinstance(value, kind):
            return change(value)
    if name == "day" and value is None:
        return date(2026, 3, 1)
    if name == "unit_price" and value is None:
        return Rate(1)
    return _mutated(value)


@settings(max_examples=30)
@given(invoice_chains(), st.data())
def test_the_hash_chain_detects_any_change_to_any_stored_field(
    chain: list[Invoice], data: st.DataObject
) -> None:
    assert verify_chain(chain) == chain[-1].hash
    position = data.draw(st.integers(0, len(chain) - 1))
    for name, changed in mutations(chain[position]):
        tampered = [*chain[:position], changed, *chain[position + 1 :]]
        with pytest.raises(ChainBroken):
            verify_chain(tampered)
        assert name  # every field was tried


@settings(max_examples=30)
@given(invoice_chains(max_size=4))
def test_the_hash_chain_detects_a_removed_or_reordered_invoice(chain: list[Invoice]) -> None:
    if len(chain) > 1:
        with pytest.raises(ChainBroken):
            verify_chain(chain[1:])
        with pytest.raises(ChainBroken):
            verify_chain([chain[1], chain[0], *chain[2:]])
        with pytest.raises(ChainBroken):
            verify_chain(chain[:-2] + chain[-1:])
    verify_chain(chain[1:], previous_hash=chain[0].hash, previous_number=chain[0].number)


def test_a_resealed_forgery_is_caught_by_the_next_link() -> None:
    first = invoice_of(())
    second = invoice_of((), number="2026-000002", previous_hash=first.hash)
    forged = dataclasses.replace(first, payer=dataclasses.replace(first.payer, name="Someone else"))
    forged = dataclasses.replace(forged, hash=invoice_hash(forged))
    with pytest.raises(ChainBroken, match="2026-000002"):
        verify_chain([forged, second])
    bad_totals = dataclasses.replace(first, total_cents=1, total_excl_vat_cents=1)
    resealed = dataclasses.replace(bad_totals, hash=invoice_hash(bad_totals))
    with pytest.raises(ChainBroken, match="totals"):
        verify_chain([resealed])

"""The FEC: 18 columns in the legal order, AAAAMMJJ dates, decimal commas, balanced gapless entries."""

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.billing.errors import FecError
from server.billing.fec import COLUMNS, fec_amount, fec_bytes, fec_date, fec_filename, fec_rows, fec_text
from server.billing.invoices import Invoice, Payer, PayerKind
from server.billing.ledger import Ledger, invoice_entry, payment_entry, reversal
from server.billing.rating import rate_usage
from tests.server.billing.sample import ALICE_PAYER, BOOK, ORG_PAYER, at, invoice_of, session
from tests.server.billing.strategies import invoice_chains

LEGAL_ORDER = [
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
]


def ledger() -> Ledger:
    book = Ledger()
    invoice = invoice_of(rate_usage([session("s", at(2, 9), 62)], BOOK).lines)
    entry = invoice_entry(invoice)
    assert entry is not None
    book.append(entry)
    payment = book.append(payment_entry(ALICE_PAYER, 650, date(2026, 4, 10), "SEPA ATL-2026-03"))
    book.append(reversal(payment, date(2026, 4, 20), "prélèvement rejeté"))
    return book


def test_the_columns_are_the_eighteen_in_the_legal_order() -> None:
    assert list(COLUMNS) == LEGAL_ORDER
    assert fec_text(ledger().entries).split("\r\n")[0] == "\t".join(LEGAL_ORDER)


def test_each_posting_is_a_line() -> None:
    lines = fec_text(ledger().entries).split("\r\n")
    assert lines[-1] == ""  # every line ends with CR LF
    rows = [line.split("\t") for line in lines[1:-1]]
    assert all(len(row) == 18 for row in rows)
    assert rows[0] == [
        "BQ", "Banque", "1", "20260410", "512000", "Banque", "", "", "SEPA ATL-2026-03", "20260410",
        "Règlement Alice Martin", "6,50", "0,00", "", "", "20260410", "", "",
    ]  # fmt: skip
    assert rows[1][4:8] == ["411000", "Membres et organisations", "M000001", "Alice Martin"]
    assert rows[1][11:13] == ["0,00", "6,50"]
    assert rows[2][:4] == ["BQ", "Banque", "2", "20260420"]
    assert rows[2][10] == "Annulation BQ-1: prélèvement rejeté"
    sales = [row for row in rows if row[0] == "VT"]
    assert {row[2] for row in sales} == {"1"}
    assert {row[8] for row in sales} == {"2026-000001"}
    assert {row[9] for row in sales} == {"20260401"}


def test_amounts_and_dates_are_written_the_french_way() -> None:
    assert fec_amount(123456) == "1234,56"
    assert fec_amount(5) == "0,05"
    assert fec_amount(-250) == "-2,50"
    assert fec_date(date(2026, 3, 2)) == "20260302"


def test_the_file_is_latin_9_and_keeps_the_euro_and_oe() -> None:
    book = Ledger()
    payer = Payer(PayerKind.ORGANISATION, 7, "Mailles & Œuvres €\tŁódź\nx")
    book.append(payment_entry(payer, 100, date(2026, 4, 1), "VIR"))
    raw = fec_bytes(book.entries)
    text = raw.decode("iso-8859-15")
    assert "Mailles & Œuvres € Lódz x" in text  # ó is Latin-9, ź is not, Ł has no accent to drop


def test_a_gap_in_a_journal_is_refused() -> None:
    entries = ledger().entries
    with pytest.raises(FecError, match="gap"):
        fec_rows([entries[0], entries[1], replace(entries[2], number=3)])  # VT-1, BQ-1, BQ-3
    with pytest.raises(FecError, match="no number"):
        fec_rows([replace(entries[0], number=None)])


def test_the_file_name_is_siren_fec_closing_date() -> None:
    assert fec_filename("123 456 789 00012", date(2026, 12, 31)) == "123456789FEC20261231.txt"
    with pytest.raises(FecError):
        fec_filename("12345", date(2026, 12, 31))


@given(invoice_chains(max_size=5), st.lists(st.integers(1, 10**7), max_size=6), st.data())
def test_fec_entries_balance_and_are_numbered_without_gaps_per_journal(
    chain: list[Invoice], payments: list[int], data: st.DataObject
) -> None:
    book = Ledger()
    for invoice in chain:
        entry = invoice_entry(invoice)
        if entry is not None:
            book.append(entry)
    for index, amount in enumerate(payments):
        payer = data.draw(st.sampled_from([ALICE_PAYER, ORG_PAYER]))
        paid = book.append(payment_entry(payer, amount, date(2026, 4, 10), f"P{index}"))
        if data.draw(st.booleans()):
            book.append(reversal(paid, date(2026, 4, 11), "erreur"))
    rows = [line.split("\t") for line in fec_text(book.entries).split("\r\n")[1:-1]]
    by_entry: dict[tuple[str, str], int] = {}
    for row in rows:
        assert len(row) == 18
        debit, credit = (int(value.replace(",", "")) for value in row[11:13])
        by_entry[(row[0], row[2])] = by_entry.get((row[0], row[2]), 0) + debit - credit
    assert all(total == 0 for total in by_entry.values())
    for journal in {code for code, _ in by_entry}:
        numbers = sorted(int(number) for code, number in by_entry if code == journal)
        assert numbers == list(range(1, len(numbers) + 1))

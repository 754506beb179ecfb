"""The ledger: posting rules give balanced entries, corrections reverse, balances come from postings."""

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.billing.errors import InvalidAmount, UnbalancedEntry
from server.billing.invoices import Invoice, credit_note
from server.billing.ledger import (
    BANK,
    DEFAULT_CHART,
    SALES,
    Account,
    JournalEntry,
    Ledger,
    Posting,
    balance,
    balances,
    invoice_entry,
    number_entries,
    payment_entry,
    refund_entry,
    reversal,
)
from server.billing.periods import Period
from server.billing.rating import plan_fee_line, rate_usage
from tests.server.billing.sample import (
    ALICE,
    ALICE_PAYER,
    BOOK,
    ORG_PAYER,
    PLAN,
    SELLER_VAT,
    at,
    invoice_of,
    sale,
    session,
)
from tests.server.billing.strategies import invoice_chains

ALICE_ACCOUNT = DEFAULT_CHART.payer_account(ALICE_PAYER)


def vat_invoice() -> Invoice:
    rating = rate_usage([session("s", at(2, 9), running_min=62)], BOOK, sales=[sale("f", at(2, 10), 100)])
    return invoice_of((plan_fee_line(ALICE, PLAN, Period(2026, 3)), *rating.lines), seller=SELLER_VAT)


def test_an_invoice_debits_the_payer_and_credits_revenue_and_vat() -> None:
    invoice = vat_invoice()
    entry = invoice_entry(invoice)
    assert entry is not None
    assert entry.journal is SALES
    assert entry.reference == "2026-000001"
    postings = {
        (p.account.number, p.account.auxiliary): (p.debit_cents, p.credit_cents) for p in entry.postings
    }
    # plan 30.00, usage 6.00 + 0.50, filament 2.50; VAT 20 % on each line
    assert postings == {
        ("411000", "M000001"): (4680, 0),
        ("445710", ""): (0, 780),
        ("706000", ""): (0, 650),
        ("706100", ""): (0, 3000),
        ("707000", ""): (0, 250),
    }


def test_a_credit_note_reverses_the_invoice_entry() -> None:
    invoice = vat_invoice()
    note = credit_note(invoice, number="2026-000002", issued_on=date(2026, 4, 5), previous_hash=invoice.hash)
    entry, reverse = invoice_entry(invoice), invoice_entry(note)
    assert entry is not None
    assert reverse is not None
    assert {(p.account, p.credit_cents, p.debit_cents) for p in entry.postings} == {
        (p.account, p.debit_cents, p.credit_cents) for p in reverse.postings
    }
    assert balances([entry, reverse]) == {p.account: 0 for p in entry.postings}


def test_an_invoice_totalling_nothing_has_no_entry() -> None:
    assert invoice_entry(invoice_of(())) is None


def test_payments_and_refunds_settle_the_payer() -> None:
    ledger = Ledger()
    entry = invoice_entry(invoice_of(rate_usage([session("s", at(2, 9), 62)], BOOK).lines))
    assert entry is not None
    ledger.append(entry)
    assert ledger.balance(ALICE_ACCOUNT) == 650
    payment = ledger.append(payment_entry(ALICE_PAYER, 1000, date(2026, 4, 10), "SEPA-2026-03"))
    assert payment.journal is BANK
    assert payment.number == 1
    assert ledger.balance(ALICE_ACCOUNT) == -350  # in credit: a prepaid balance
    ledger.append(refund_entry(ALICE_PAYER, 350, date(2026, 4, 12), "VIR-0001"))
    assert ledger.balance(ALICE_ACCOUNT) == 0
    assert ledger.balance(DEFAULT_CHART.bank) == 650
    assert [e.number for e in ledger.entries] == [1, 1, 2]


def test_a_correction_is_a_reversing_entry() -> None:
    ledger = Ledger()
    wrong = ledger.append(payment_entry(ALICE_PAYER, 1000, date(2026, 4, 10), "CHQ-12"))
    undo = ledger.append(reversal(wrong, date(2026, 4, 11), "cheque credited to the wrong member"))
    right = ledger.append(payment_entry(ORG_PAYER, 1000, date(2026, 4, 11), "CHQ-12"))
    assert undo.reverses == wrong.number
    assert "Annulation BQ-1" in undo.label
    assert [e.number for e in ledger.entries] == [1, 2, 3]
    assert ledger.balance(ALICE_ACCOUNT) == 0
    assert ledger.balance(DEFAULT_CHART.payer_account(ORG_PAYER)) == -1000
    assert ledger.entries[0] == wrong  # nothing was edited
    with pytest.raises(UnbalancedEntry):
        ledger.append(reversal(wrong, date(2026, 4, 12), "twice"))
    assert right.number == 3
    with pytest.raises(UnbalancedEntry):
        reversal(payment_entry(ALICE_PAYER, 1, date(2026, 4, 1), "x"), date(2026, 4, 1), "never appended")
    stray = reversal(replace(wrong, number=7), date(2026, 4, 12), "not in the ledger")
    with pytest.raises(UnbalancedEntry):
        ledger.append(stray)
    with pytest.raises(InvalidAmount):
        reversal(wrong, date(2026, 4, 9), "before the entry")


def test_an_unbalanced_entry_is_refused() -> None:
    cash = Account("530000", "Caisse")
    with pytest.raises(UnbalancedEntry):
        JournalEntry(
            BANK,
            date(2026, 4, 1),
            "x",
            date(2026, 4, 1),
            "x",
            (Posting(cash, 100), Posting(ALICE_ACCOUNT, 0, 99)),
        )
    with pytest.raises(UnbalancedEntry):
        JournalEntry(BANK, date(2026, 4, 1), "x", date(2026, 4, 1), "x", (Posting(cash, 100),))
    with pytest.raises(UnbalancedEntry):
        Posting(cash, 100, 100)
    with pytest.raises(UnbalancedEntry):
        Posting(cash, 0, 0)
    with pytest.raises(UnbalancedEntry):
        Posting(cash, -5, 0)
    with pytest.raises(InvalidAmount):
        payment_entry(ALICE_PAYER, 0, date(2026, 4, 1), "x")


def test_an_account_is_its_number_whatever_its_name() -> None:
    renamed = Account("411000", "Clients", "M000001", "Alice Martin-Durand")
    assert renamed == ALICE_ACCOUNT
    entries = [payment_entry(ALICE_PAYER, 100, date(2026, 4, 1), "x")]
    assert balance(entries, renamed) == -100


def test_entries_are_numbered_per_journal_without_gaps() -> None:
    entries = [
        payment_entry(ALICE_PAYER, 100, date(2026, 4, 1), "a"),
        invoice_entry(invoice_of(rate_usage([session("s", at(2, 9), 62)], BOOK).lines)),
        payment_entry(ALICE_PAYER, 100, date(2026, 4, 2), "b"),
    ]
    numbered = number_entries([e for e in entries if e is not None], {"BQ": 41})
    assert [(e.journal.code, e.number) for e in numbered] == [("BQ", 42), ("VT", 1), ("BQ", 43)]
    with pytest.raises(UnbalancedEntry):
        number_entries(numbered)


@given(invoice_chains(max_size=5), st.lists(st.integers(1, 10**6), max_size=5))
def test_every_entry_balances_and_all_balances_sum_to_zero(chain: list[Invoice], payments: list[int]) -> None:
    ledger = Ledger()
    for invoice in chain:
        entry = invoice_entry(invoice)
        if entry is not None:
            ledger.append(entry)
    for index, amount in enumerate(payments):
        ledger.append(payment_entry(ALICE_PAYER, amount, date(2026, 4, 10), f"P{index}"))
    for entry in ledger.entries:
        assert sum(p.debit_cents for p in entry.postings) == sum(p.credit_cents for p in entry.postings)
    assert sum(balances(ledger.entries).values()) == 0

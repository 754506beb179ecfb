"""The ledger: append-only, double-entry journal entries; balances are computed from them.

Every money event is a :class:`JournalEntry` of balanced :class:`Posting` s (Σ debits =
Σ credits, each posting on one side only). The posting rules, per event:

================  ==========================  ===================================
event             debit                        credit
================  ==========================  ===================================
invoice           the payer (411, total)       revenue per kind (706/7061/707, excl.
                                               VAT), VAT collected (44571)
credit note       revenue, VAT collected       the payer
payment           bank (512)                   the payer
refund            the payer                    bank
correction        the reversal of the entry it corrects (same journal, sides
                  swapped), then the right entry
================  ==========================  ===================================

Each member and each organisation has its own auxiliary account under 411 (``M000012``,
``O000003``). An account's balance is Σ debits - Σ credits: positive, the payer owes
the association; negative, the payer is in credit (a prepaid balance). Entries are only
ever added; numbers are given on appending, gapless per journal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from server.billing.errors import InvalidAmount, UnbalancedEntry
from server.billing.invoices import Invoice, InvoiceKind, Payer, PayerKind
from server.billing.lines import LineKind


@dataclass(frozen=True, slots=True)
class Journal:
    code: str
    label: str


SALES = Journal("VT", "Ventes")
BANK = Journal("BQ", "Banque")
MISC = Journal("OD", "Opérations diverses")


@dataclass(frozen=True, slots=True)
class Account:
    """A general-ledger account, with an auxiliary (a member's, an organisation's) under it.

    Two accounts are the same when their numbers are: names are only for reading.
    """

    number: str
    name: str = field(compare=False)
    auxiliary: str = ""
    auxiliary_name: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Chart:
    """The accounts billing posts to (French associations' chart, PCG)."""

    receivable: Account = Account("411000", "Membres et organisations")
    usage_revenue: Account = Account("706000", "Prestations de services (usage des machines)")
    plan_revenue: Account = Account("706100", "Abonnements")
    goods_revenue: Account = Account("707000", "Ventes de marchandises")
    vat_collected: Account = Account("445710", "TVA collectée")
    bank: Account = Account("512000", "Banque")

    def payer_account(self, payer: Payer) -> Account:
        prefix = "M" if payer.kind is PayerKind.MEMBER else "O"
        return replace(self.receivable, auxiliary=f"{prefix}{payer.id:06d}", auxiliary_name=payer.name)

    def revenue_for(self, kind: LineKind) -> Account:
        if kind is LineKind.PLAN_FEE:
            return self.plan_revenue
        if kind is LineKind.CONSUMABLE:
            return self.goods_revenue
        return self.usage_revenue


DEFAULT_CHART = Chart()


@dataclass(frozen=True, slots=True)
class Posting:
    account: Account
    debit_cents: int = 0
    credit_cents: int = 0

    def __post_init__(self) -> None:
        amounts = (self.debit_cents, self.credit_cents)
        if any(not isinstance(a, int) or a < 0 for a in amounts) or (self.debit_cents > 0) == (
            self.credit_cents > 0
        ):
            raise UnbalancedEntry(
                f"a posting on {self.account.number} is a positive debit or credit, not both"
            )

    @property
    def signed_cents(self) -> int:
        """Debit positive, credit negative."""
        return self.debit_cents - self.credit_cents

    def reversed(self) -> Posting:
        return Posting(self.account, self.credit_cents, self.debit_cents)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accounting entry (an *écriture*): dated, referenced, balanced."""

    journal: Journal
    on: date
    reference: str
    """The document it records (an invoice number, a payment's reference): the FEC's PieceRef."""
    reference_date: date
    label: str
    postings: tuple[Posting, ...]
    number: int | None = None
    """Given when the entry is appended: 1, 2, 3... per journal, without gaps."""
    reverses: int | None = None
    """The number of the entry (same journal) this one reverses."""

    def __post_init__(self) -> None:
        if len(self.postings) < 2:
            raise UnbalancedEntry(f"entry {self.reference!r} needs a debit and a credit")
        debit = sum(p.debit_cents for p in self.postings)
        credit = sum(p.credit_cents for p in self.postings)
        if debit != credit:
            raise UnbalancedEntry(f"entry {self.reference!r}: debits {debit} ≠ credits {credit}")

    @property
    def amount_cents(self) -> int:
        return sum(p.debit_cents for p in self.postings)


def _postings(signed: Mapping[Account, int]) -> tuple[Posting, ...]:
    """Postings from debit-positive amounts per account, zero amounts left out, in account order."""
    ordered = sorted(signed.items(), key=lambda item: (item[0].number, item[0].auxiliary))
    return tuple(
        Posting(account, debit_cents=amount) if amount > 0 else Posting(account, credit_cents=-amount)
        for account, amount in ordered
        if amount
    )


def invoice_entry(invoice: Invoice, chart: Chart = DEFAULT_CHART) -> JournalEntry | None:
    """The sales-journal entry of an invoice or credit note; None if it totals nothing."""
    by_kind: dict[LineKind, int] = defaultdict(int)
    vat = 0
    for line in invoice.lines:
        by_kind[line.kind] += line.amount_cents
        vat += line.vat_cents
    signed: dict[Account, int] = defaultdict(int)
    signed[chart.payer_account(invoice.payer)] += invoice.total_cents
    for kind, amount in by_kind.items():
        signed[chart.revenue_for(kind)] -= amount
    signed[chart.vat_collected] -= vat
    postings = _postings(signed)
    if not postings:
        return None
    what = "Avoir" if invoice.kind is InvoiceKind.CREDIT_NOTE else "Facture"
    return JournalEntry(
        SALES, invoice.issued_on, invoice.number, invoice.issued_on, f"{what} {invoice.number} {invoice.payer.name}",
        postings,
    )  # fmt: skip


def payment_entry(
    payer: Payer,
    amount_cents: int,
    on: date,
    reference: str,
    *,
    label: str = "",
    chart: Chart = DEFAULT_CHART,
) -> JournalEntry:
    """Money received from ``payer`` (a direct debit collected, a transfer, a prepaid top-up)."""
    if amount_cents <= 0:
        raise InvalidAmount(f"a payment is a positive amount, not {amount_cents} cents")
    postings = (
        Posting(chart.bank, debit_cents=amount_cents),
        Posting(chart.payer_account(payer), credit_cents=amount_cents),
    )
    return JournalEntry(BANK, on, reference, on, label or f"Règlement {payer.name}", postings)


def refund_entry(
    payer: Payer,
    amount_cents: int,
    on: date,
    reference: str,
    *,
    label: str = "",
    chart: Chart = DEFAULT_CHART,
) -> JournalEntry:
    """Money paid back to ``payer`` (a prepaid balance returned, a rejected debit)."""
    return reversal_of(
        payment_entry(
            payer, amount_cents, on, reference, label=label or f"Remboursement {payer.name}", chart=chart
        )
    )


def reversal_of(entry: JournalEntry) -> JournalEntry:
    """The same postings, sides swapped (an unnumbered entry: a refund is a payment reversed)."""
    return replace(entry, postings=tuple(p.reversed() for p in entry.postings), number=None, reverses=None)


def reversal(entry: JournalEntry, on: date, reason: str) -> JournalEntry:
    """The entry that cancels a recorded ``entry``: how a mistake is corrected, never by editing it."""
    if entry.number is None:
        raise UnbalancedEntry("only an entry in the ledger (numbered) can be reversed")
    if on < entry.on:
        raise InvalidAmount(
            f"a reversal cannot be dated before the entry it reverses ({entry.on.isoformat()})"
        )
    return replace(
        reversal_of(entry),
        on=on,
        label=f"Annulation {entry.journal.code}-{entry.number}: {reason}",
        reverses=entry.number,
    )


def number_entries(
    entries: Iterable[JournalEntry], last: Mapping[str, int] | None = None
) -> list[JournalEntry]:
    """Number ``entries`` in the order given, continuing each journal from ``last[code]``."""
    counters: dict[str, int] = defaultdict(int, last or {})
    numbered = []
    for entry in entries:
        if entry.number is not None:
            raise UnbalancedEntry(f"entry {entry.journal.code}-{entry.number} is numbered already")
        counters[entry.journal.code] += 1
        numbered.append(replace(entry, number=counters[entry.journal.code]))
    return numbered


def balances(entries: Iterable[JournalEntry]) -> dict[Account, int]:
    """Σ debits - Σ credits per account, over ``entries``."""
    totals: dict[Account, int] = defaultdict(int)
    for entry in entries:
        for posting in entry.postings:
            totals[posting.account] += posting.signed_cents
    return dict(totals)


def balance(entries: Iterable[JournalEntry], account: Account) -> int:
    """What ``account``'s holder owes (positive) or holds in credit (negative)."""
    return sum(p.signed_cents for entry in entries for p in entry.postings if p.account == account)


@dataclass
class Ledger:
    """An in-memory, append-only ledger: what the database tables will hold, with the same rules."""

    entries: list[JournalEntry] = field(default_factory=list)

    def append(self, entry: JournalEntry) -> JournalEntry:
        last = max((e.number or 0 for e in self.entries if e.journal == entry.journal), default=0)
        if entry.reverses is not None and not any(
            e.journal == entry.journal and e.number == entry.reverses for e in self.entries
        ):
            raise UnbalancedEntry(
                f"entry {entry.journal.code}-{entry.reverses} to reverse is not in the ledger"
            )
        if entry.reverses is not None and any(
            e.journal == entry.journal and e.reverses == entry.reverses for e in self.entries
        ):
            raise UnbalancedEntry(f"entry {entry.journal.code}-{entry.reverses} is reversed already")
        (numbered,) = number_entries([entry], {entry.journal.code: last})
        self.entries.append(numbered)
        return numbered

    def balance(self, account: Account) -> int:
        return balance(self.entries, account)

"""The FEC (*fichier des écritures comptables*, art. A47 A-1 du LPF) for the accountant.

- The 18 columns in the legal order (:data:`COLUMNS`), a header line of their names,
  fields separated by a tab, lines ended by CR LF.
- Dates ``AAAAMMJJ``; amounts with a decimal comma and no thousands separator, both
  ``Debit`` and ``Credit`` written on every line (``0,00`` on the other side).
- Entries (*écritures*) grouped by journal, in number order; every entry balanced and
  the numbers of each journal consecutive, without gaps (:class:`FecError` otherwise).
  ``EcritureNum`` is the entry's number in its journal; ``ValidDate`` its date.
- Members and organisations appear as auxiliary accounts (``CompAuxNum``) of 411.
- Encoded in ISO 8859-15 (Latin-9, which has € and œ); a character it lacks is written
  without its accent, or as ``?``. Tabs and line breaks inside labels become spaces.
- Amounts are in euros: ``Montantdevise`` and ``Idevise`` stay empty.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import date

from server.billing.errors import FecError
from server.billing.ledger import JournalEntry

COLUMNS = (
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
)
ENCODING = "iso-8859-15"


def fec_date(day: date) -> str:
    return day.strftime("%Y%m%d")


def fec_amount(cents: int) -> str:
    """``123456`` as ``1234,56``."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units},{rest:02d}"


def _text(value: str) -> str:
    return " ".join(value.replace("\t", " ").replace("\r", " ").replace("\n", " ").split())


_PLAIN = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "\u0131": "i", "Ħ": "H", "ħ": "h"}  # \u0131: dotless i
"""Letters that carry a stroke rather than an accent, and so do not decompose."""


def _encodable(char: str) -> str:
    try:
        char.encode(ENCODING)
    except UnicodeEncodeError:
        if char in _PLAIN:
            return _PLAIN[char]
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        try:
            base.encode(ENCODING)
        except UnicodeEncodeError:
            return "?"
        return base or "?"
    return char


def fec_rows(entries: Iterable[JournalEntry]) -> list[tuple[str, ...]]:
    """The FEC's lines (without the header), one per posting, after checking every entry."""
    ordered = sorted(entries, key=lambda e: (e.journal.code, e.number or 0))
    rows: list[tuple[str, ...]] = []
    last: dict[str, int] = {}
    for entry in ordered:
        code = entry.journal.code
        if entry.number is None:
            raise FecError(
                f"entry {entry.reference!r} of journal {code} has no number: append it to the ledger first"
            )
        if code in last and entry.number != last[code] + 1:
            raise FecError(f"journal {code}: entry {entry.number} follows {last[code]}, numbers have a gap")
        last[code] = entry.number
        debit = sum(p.debit_cents for p in entry.postings)
        credit = sum(p.credit_cents for p in entry.postings)
        if debit != credit or debit == 0:
            raise FecError(f"journal {code}, entry {entry.number}: debits {debit} and credits {credit}")
        for posting in entry.postings:
            account = posting.account
            rows.append(
                (
                    code,
                    _text(entry.journal.label),
                    str(entry.number),
                    fec_date(entry.on),
                    account.number,
                    _text(account.name),
                    account.auxiliary,
                    _text(account.auxiliary_name),
                    _text(entry.reference),
                    fec_date(entry.reference_date),
                    _text(entry.label),
                    fec_amount(posting.debit_cents),
                    fec_amount(posting.credit_cents),
                    "",
                    "",
                    fec_date(entry.on),
                    "",
                    "",
                )
            )
    return rows


def fec_text(entries: Iterable[JournalEntry]) -> str:
    lines = ["\t".join(COLUMNS), *("\t".join(row) for row in fec_rows(entries))]
    return "".join(line + "\r\n" for line in lines)


def fec_bytes(entries: Iterable[JournalEntry]) -> bytes:
    """The FEC file's content, ready to write."""
    text = fec_text(entries)
    try:
        return text.encode(ENCODING)
    except UnicodeEncodeError:
        return "".join(_encodable(char) for char in text).encode(ENCODING)


def fec_filename(siren: str, closing_day: date) -> str:
    """``<SIREN>FEC<AAAAMMJJ>.txt``, the name the tax administration expects."""
    digits = "".join(siren.split())[:9]
    if not (len(digits) == 9 and digits.isdigit()):
        raise FecError(f"{siren!r} is not a SIREN (9 digits, the start of the SIRET)")
    return f"{digits}FEC{fec_date(closing_day)}.txt"

"""CSV exports open in a French (or English) spreadsheet as they are."""

import csv
import io

import pytest

from server.billing.csv_export import invoice_lines_csv, rated_sessions_csv
from server.billing.rating import rate_usage
from tests.server.billing.sample import BOOK, SELLER_VAT, at, invoice_of, session


def rows(text: str, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def test_invoice_lines_in_french() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=62)], BOOK)
    table = rows(invoice_lines_csv([invoice_of(rating.lines, seller=SELLER_VAT)]), ";")
    assert table[0][:3] == ["facture", "type", "date"]
    assert table[1] == [
        "2026-000001", "invoice", "2026-04-01", "2026-03", "Alice Martin", "M-0001", "Alice Martin", "sewing-1",
        "2026-03-02", "running", "", "60", "min", "6,00", "6,00", "20,00", "1,20", "7,20", "member-sewing-2026", "",
    ]  # fmt: skip
    assert len(table) == 3


def test_invoice_lines_in_english() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=62)], BOOK)
    table = rows(invoice_lines_csv([invoice_of(rating.lines)], "en"), ",")
    assert table[0][:3] == ["invoice", "kind", "date"]
    assert table[2][9:18] == ["session_fee", "", "1", "session", "0.50", "0.50", "0.00", "0.00", "0.50"]


def test_rated_sessions() -> None:
    rating = rate_usage([session("s", at(2, 9), running_min=4), session("t", at(2, 10), running_min=1)], BOOK)
    table = rows(rated_sessions_csv(rating.sessions), ";")
    assert table[1] == ["s", "1", "sewing-1", "2026-03-02", "member-sewing-2026", "0", "5", "0", "5", "0", "0,50", "0,50", "0,50", ""]  # fmt: skip
    assert table[2][5] == "1"  # a free try


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="fr or en"):
        invoice_lines_csv([], "de")

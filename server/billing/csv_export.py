"""CSV exports for a spreadsheet: every invoice line, and every rated session.

French by default: ``;`` between fields and a decimal comma, as a French spreadsheet
opens them; English: ``,`` and a decimal point. Amounts are in euros with two decimals
(exactly the cents, no rounding); the headers are in the chosen language.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from server.billing.invoices import Invoice
from server.billing.lines import Unit
from server.billing.money import decimal_rate
from server.billing.rating import RatedSession

_INVOICE_HEADERS = {
    "fr": (
        "facture", "type", "date", "période", "payeur", "n° payeur", "membre", "machine", "jour",
        "nature", "article", "quantité", "unité", "prix unitaire HT (€/h pour les minutes)", "montant HT", "taux TVA (%)",
        "TVA", "montant TTC", "version de prix", "régularisation de",
    ),
    "en": (
        "invoice", "kind", "date", "period", "payer", "payer no.", "member", "machine", "day",
        "line", "item", "quantity", "unit", "unit price excl. VAT (€/h for minutes)", "amount excl. VAT", "VAT rate (%)",
        "VAT", "amount incl. VAT", "price version", "adjustment for",
    ),
}  # fmt: skip

_SESSION_HEADERS = {
    "fr": (
        "session", "membre", "machine", "jour", "version de prix", "essai gratuit", "minutes de marche",
        "minutes incluses", "minutes facturées", "minutes à l'arrêt", "frais de session",
        "montant mesuré", "complément minimum", "régularisation de",
    ),
    "en": (
        "session", "member", "machine", "day", "price version", "free try", "running minutes",
        "included minutes", "charged minutes", "idle minutes", "session fee", "metered amount",
        "minimum top-up", "adjustment for",
    ),
}  # fmt: skip


def _language(language: str) -> str:
    if language not in _INVOICE_HEADERS:
        raise ValueError(f"language {language!r}: fr or en")
    return language


def _euros(cents: int, language: str) -> str:
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units}{',' if language == 'fr' else '.'}{rest:02d}"


def _percent(basis_points: int, language: str) -> str:
    return _euros(basis_points, language)


def _csv(headers: tuple[str, ...], rows: Iterable[tuple[object, ...]], language: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if language == "fr" else ",", lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def invoice_lines_csv(invoices: Iterable[Invoice], language: str = "fr") -> str:
    """One row per invoice line (credit notes' lines negative)."""
    language = _language(language)
    rows = []
    for invoice in invoices:
        for line in invoice.lines:
            price = line.unit_price
            scale = 60 if line.unit is Unit.MINUTE else 1  # a rate per minute reads per hour
            rows.append(
                (
                    invoice.number,
                    str(invoice.kind),
                    invoice.issued_on.isoformat(),
                    str(invoice.period),
                    invoice.payer.name,
                    invoice.payer.reference or str(invoice.payer.id),
                    line.member_name,
                    line.machine,
                    line.day.isoformat() if line.day else "",
                    str(line.kind),
                    line.item,
                    line.quantity,
                    str(line.unit),
                    decimal_rate(price, scale, "," if language == "fr" else ".") if price else "",
                    _euros(line.amount_cents, language),
                    _percent(line.vat_rate_bp, language),
                    _euros(line.vat_cents, language),
                    _euros(line.total_cents, language),
                    line.price_version,
                    str(line.adjustment_for or ""),
                )
            )
    return _csv(_INVOICE_HEADERS[language], rows, language)


def rated_sessions_csv(sessions: Iterable[RatedSession], language: str = "fr") -> str:
    """One row per rated session: how each minute and cent of the usage lines came about."""
    language = _language(language)
    rows = [
        (
            s.session_id,
            s.member_id,
            s.machine,
            s.day.isoformat(),
            s.price_version,
            int(s.charge.free_try),
            s.charge.running_minutes,
            s.charge.included_minutes,
            s.charge.charged_minutes,
            s.charge.idle_minutes,
            _euros(s.charge.fee_cents, language),
            _euros(s.charge.metered_cents, language),
            _euros(s.charge.minimum_topup_cents, language),
            str(s.adjustment_for or ""),
        )
        for s in sessions
    ]
    return _csv(_SESSION_HEADERS[language], rows, language)

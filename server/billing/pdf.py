"""Invoices and credit notes as PDF, in French (default) or English.

The page carries what a French invoice must: the association's name, address and
SIRET; the number and date of issue, the due date and the period; the payer's name,
address and number; one line per machine and day and kind with the date, the machine,
the designation, the quantity (minutes, sessions, grams), the unit price excluding VAT,
the VAT rate and the amount; the totals excluding VAT, the VAT per rate and the total —
or, for an association not subject to VAT, the mention "TVA non applicable, art. 293 B
du CGI". The foot carries the payment terms, the page number and the start of the
invoice's hash. Text is set in DejaVu Sans, shipped in ``fonts/`` with its licence, so
that "€", "œ" and every accented name print.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from server.billing.invoices import VAT_EXEMPT_MENTION, Invoice, InvoiceKind, InvoiceLine, PayerKind
from server.billing.lines import LineKind, Unit
from server.billing.money import format_cents, format_rate
from server.billing.periods import Period

FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVu"
GREY = (90, 90, 90)

_MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}  # fmt: skip

_TEXT = {
    "fr": {
        LineKind.RUNNING: "Temps de marche",
        LineKind.INCLUDED: "Inclus dans l'abonnement « {item} »",
        LineKind.IDLE: "Temps de préparation (à l'arrêt)",
        LineKind.SESSION_FEE: "Frais de session",
        LineKind.MINIMUM: "Complément au minimum par session",
        LineKind.DAILY_CAP: "Plafond journalier atteint ({cap} par jour)",
        LineKind.PLAN_FEE: "Abonnement « {item} », {month}",
        LineKind.CONSUMABLE: "{item}",
        "invoice": "FACTURE",
        "credit_note": "AVOIR",
        "number": "N°",
        "issued": "Date",
        "due": "Échéance",
        "period": "Période",
        "billed_to": "Facturé à",
        "member_no": "Membre n°",
        "organisation_no": "Organisation n°",
        "reverses": "Cet avoir annule la facture n° {number}.",
        "adjustment": "Régularisation {month} : ",
        "col_date": "Date",
        "col_machine": "Machine",
        "col_what": "Désignation",
        "col_qty": "Quantité",
        "col_price": "Prix unit. HT",
        "col_price_exempt": "Prix unitaire",
        "col_vat": "TVA",
        "col_amount": "Montant HT",
        "col_amount_exempt": "Montant",
        "total_excl": "Total HT",
        "vat_at": "TVA {rate}",
        "total": "Total TTC",
        "total_exempt": "Total à payer",
        "credit_total": "Total de l'avoir",
        "siret": "SIRET",
        "vat_number": "N° TVA",
        "page": "Page {page}/{pages}",
        "fingerprint": "Empreinte",
        "per_hour": "/h",
        "units": {Unit.MINUTE: ("min", "min"), Unit.SESSION: ("session", "sessions"), Unit.DAY: ("jour", "jours"),
                  Unit.MONTH: ("mois", "mois"), Unit.GRAM: ("g", "g"), Unit.METRE: ("m", "m"),
                  Unit.PIECE: ("pièce", "pièces")},
    },
    "en": {
        LineKind.RUNNING: "Running time",
        LineKind.INCLUDED: "Included in the plan “{item}”",
        LineKind.IDLE: "Setup time (unlocked, not running)",
        LineKind.SESSION_FEE: "Session fee",
        LineKind.MINIMUM: "Top-up to the minimum per session",
        LineKind.DAILY_CAP: "Daily cap reached ({cap} a day)",
        LineKind.PLAN_FEE: "Plan “{item}”, {month}",
        LineKind.CONSUMABLE: "{item}",
        "invoice": "INVOICE",
        "credit_note": "CREDIT NOTE",
        "number": "No.",
        "issued": "Date",
        "due": "Due",
        "period": "Period",
        "billed_to": "Billed to",
        "member_no": "Member no.",
        "organisation_no": "Organisation no.",
        "reverses": "This credit note cancels invoice no. {number}.",
        "adjustment": "Adjustment for {month}: ",
        "col_date": "Date",
        "col_machine": "Machine",
        "col_what": "Description",
        "col_qty": "Quantity",
        "col_price": "Unit price excl. VAT",
        "col_price_exempt": "Unit price",
        "col_vat": "VAT",
        "col_amount": "Amount excl. VAT",
        "col_amount_exempt": "Amount",
        "total_excl": "Total excl. VAT",
        "vat_at": "VAT {rate}",
        "total": "Total incl. VAT",
        "total_exempt": "Total due",
        "credit_total": "Credit note total",
        "siret": "SIRET",
        "vat_number": "VAT no.",
        "page": "Page {page}/{pages}",
        "fingerprint": "Fingerprint",
        "per_hour": "/h",
        "units": {Unit.MINUTE: ("min", "min"), Unit.SESSION: ("session", "sessions"), Unit.DAY: ("day", "days"),
                  Unit.MONTH: ("month", "months"), Unit.GRAM: ("g", "g"), Unit.METRE: ("m", "m"),
                  Unit.PIECE: ("piece", "pieces")},
    },
}  # fmt: skip


def _date(day: date, language: str) -> str:
    return day.strftime("%d/%m/%Y") if language == "fr" else day.isoformat()


def _month(period: Period, language: str) -> str:
    return f"{_MONTHS[language][period.month - 1]} {period.year}"


def _rate(bp: int, language: str) -> str:
    whole, rest = divmod(bp, 100)
    number = f"{whole}" if rest == 0 else f"{whole}{',' if language == 'fr' else '.'}{rest:02d}".rstrip("0")
    return f"{number}\u00a0%"


class _InvoicePDF(FPDF):
    def __init__(self, invoice: Invoice, language: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.invoice = invoice
        self.language = language
        self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=22)

    def footer(self) -> None:
        text = _TEXT[self.language]
        self.set_y(-18)
        self.set_font(FONT, "", 7)
        self.set_text_color(*GREY)
        terms = self.invoice.seller.payment_terms
        if terms:
            self.multi_cell(0, 3.2, terms, align="C", new_x="LMARGIN", new_y="NEXT")
        page = str(text["page"]).format(page=self.page_no(), pages="{nb}")
        fingerprint = f"{text['fingerprint']} SHA-256 {self.invoice.hash[:16]}…"
        self.cell(90, 4, f"{self.invoice.number} · {fingerprint}")
        self.cell(0, 4, page, align="R")
        self.set_text_color(0, 0, 0)


def _designation(line: InvoiceLine, invoice: Invoice, language: str) -> str:
    text = _TEXT[language]
    template = str(text[line.kind])
    cap = format_rate(line.unit_price, 1, language) if line.unit_price else ""
    words = template.format(item=line.item, cap=cap, month=_month(invoice.period, language))
    if line.adjustment_for is not None:
        words = str(text["adjustment"]).format(month=_month(line.adjustment_for, language)) + words
    if invoice.payer.kind is PayerKind.ORGANISATION and line.kind is not LineKind.PLAN_FEE:
        words = f"{line.member_name} — {words}"
    elif invoice.payer.kind is PayerKind.ORGANISATION:
        words = f"{words} ({line.member_name})"
    return words


def _quantity(line: InvoiceLine, language: str) -> str:
    if line.kind is LineKind.DAILY_CAP:
        return ""
    units = _TEXT[language]["units"]
    assert isinstance(units, dict)
    singular, plural = units[line.unit]
    return f"{line.quantity}\u00a0{singular if abs(line.quantity) == 1 else plural}"


def _unit_price(line: InvoiceLine, language: str) -> str:
    if line.unit_price is None or line.kind is LineKind.DAILY_CAP:
        return ""
    if line.unit is Unit.MINUTE:
        return format_rate(line.unit_price, 60, language) + str(_TEXT[language]["per_hour"])
    suffix = {Unit.GRAM: "/g", Unit.METRE: "/m"}.get(line.unit, "")
    return format_rate(line.unit_price, 1, language) + suffix


def _header(pdf: _InvoicePDF, invoice: Invoice, language: str) -> None:
    text = _TEXT[language]
    seller, payer = invoice.seller, invoice.payer
    top = pdf.get_y()
    pdf.set_font(FONT, "B", 13)
    pdf.multi_cell(95, 6, seller.name, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    for address_line in seller.address:
        pdf.cell(95, 4.5, address_line, new_x="LMARGIN", new_y="NEXT")
    pdf.cell(95, 4.5, f"{text['siret']} : {seller.siret}", new_x="LMARGIN", new_y="NEXT")
    if seller.vat_number:
        pdf.cell(95, 4.5, f"{text['vat_number']} : {seller.vat_number}", new_x="LMARGIN", new_y="NEXT")
    left_bottom = pdf.get_y()

    pdf.set_xy(120, top)
    pdf.set_font(FONT, "B", 18)
    title = text["credit_note"] if invoice.kind is InvoiceKind.CREDIT_NOTE else text["invoice"]
    pdf.cell(75, 9, str(title), align="R", new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, "", 9.5)
    for label, value in (
        (text["number"], invoice.number),
        (text["issued"], _date(invoice.issued_on, language)),
        (text["due"], _date(invoice.due_on, language)),
        (text["period"], _month(invoice.period, language)),
    ):
        pdf.cell(75, 5, f"{label} : {value}" if language == "fr" else f"{label}: {value}", align="R",
                 new_x="LEFT", new_y="NEXT")  # fmt: skip

    pdf.set_xy(110, max(left_bottom, pdf.get_y()) + 6)
    pdf.set_font(FONT, "", 8)
    pdf.set_text_color(*GREY)
    pdf.cell(85, 4.5, str(text["billed_to"]), new_x="LEFT", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(FONT, "B", 10.5)
    pdf.multi_cell(85, 5.5, payer.name, new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    for address_line in payer.address:
        pdf.cell(85, 4.5, address_line, new_x="LEFT", new_y="NEXT")
    label = text["member_no"] if payer.kind is PayerKind.MEMBER else text["organisation_no"]
    pdf.cell(85, 4.5, f"{label} {payer.reference or payer.id}", new_x="LMARGIN", new_y="NEXT")
    if invoice.credited_invoice:
        pdf.ln(3)
        pdf.set_font(FONT, "B", 9.5)
        pdf.cell(
            0, 5, str(text["reverses"]).format(number=invoice.credited_invoice), new_x="LMARGIN", new_y="NEXT"
        )
    pdf.ln(6)


def _table(pdf: _InvoicePDF, invoice: Invoice, language: str) -> None:
    text = _TEXT[language]
    exempt = invoice.seller.vat_exempt
    price = text["col_price_exempt"] if exempt else text["col_price"]
    headings = [text["col_date"], text["col_machine"], text["col_what"], text["col_qty"], price]
    widths: tuple[int, ...]
    align: tuple[str, ...]
    if exempt:
        headings.append(text["col_amount_exempt"])
        widths = (19, 32, 67, 20, 22, 20)
        align = ("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT")
    else:
        headings += [text["col_vat"], text["col_amount"]]
        widths = (19, 28, 56, 20, 22, 13, 22)
        align = ("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")
    pdf.set_font(FONT, "", 8)
    pdf.set_draw_color(200, 200, 200)
    heading_style = FontFace(family=FONT, emphasis="BOLD", fill_color=(235, 235, 235))
    with pdf.table(
        col_widths=widths,
        text_align=align,
        headings_style=heading_style,
        line_height=4.2,
        padding=(1.2, 1.2, 1.2, 1.2),
        borders_layout="HORIZONTAL_LINES",
        width=180,
    ) as table:
        table.row([str(h) for h in headings])
        for line in invoice.lines:
            cells = [
                _date(line.day, language) if line.day else "",
                line.machine_name,
                _designation(line, invoice, language),
                _quantity(line, language),
                _unit_price(line, language),
            ]
            if not exempt:
                cells.append(_rate(line.vat_rate_bp, language))
            cells.append(format_cents(line.amount_cents, language))
            table.row(cells)


def _totals(pdf: _InvoicePDF, invoice: Invoice, language: str) -> None:
    text = _TEXT[language]
    pdf.ln(4)
    rows: list[tuple[str, str, bool]] = []
    if invoice.seller.vat_exempt:
        label = text["credit_total"] if invoice.kind is InvoiceKind.CREDIT_NOTE else text["total_exempt"]
        rows.append((str(label), format_cents(invoice.total_cents, language), True))
    else:
        rows.append((str(text["total_excl"]), format_cents(invoice.total_excl_vat_cents, language), False))
        by_rate: dict[int, int] = defaultdict(int)
        for line in invoice.lines:
            by_rate[line.vat_rate_bp] += line.vat_cents
        for rate, vat in sorted(by_rate.items()):
            rows.append(
                (str(text["vat_at"]).format(rate=_rate(rate, language)), format_cents(vat, language), False)
            )
        label = text["credit_total"] if invoice.kind is InvoiceKind.CREDIT_NOTE else text["total"]
        rows.append((str(label), format_cents(invoice.total_cents, language), True))
    if pdf.will_page_break(6 * len(rows) + 12):
        pdf.add_page()
    for label, amount, bold in rows:
        pdf.set_x(105)
        pdf.set_font(FONT, "B" if bold else "", 10.5 if bold else 9.5)
        pdf.cell(55, 6, label, border="T" if bold else 0)
        pdf.cell(35, 6, amount, align="R", border="T" if bold else 0, new_x="LMARGIN", new_y="NEXT")
    if invoice.seller.vat_exempt:
        pdf.ln(3)
        pdf.set_font(FONT, "", 9)
        pdf.cell(0, 5, VAT_EXEMPT_MENTION, align="R", new_x="LMARGIN", new_y="NEXT")
        if language == "en":  # the mention is the law's, in French; a translation helps the reader
            pdf.set_font(FONT, "", 8)
            pdf.cell(0, 4, "(VAT not applicable, art. 293 B of the French tax code)", align="R",
                     new_x="LMARGIN", new_y="NEXT")  # fmt: skip


def render_invoice(invoice: Invoice, language: str = "fr") -> bytes:
    """The invoice (or credit note) as a PDF; the same invoice always gives the same bytes."""
    if language not in _TEXT:
        raise ValueError(f"language {language!r}: fr or en")
    pdf = _InvoicePDF(invoice, language)
    kind = _TEXT[language]["credit_note" if invoice.kind is InvoiceKind.CREDIT_NOTE else "invoice"]
    pdf.set_title(f"{str(kind).capitalize()} {invoice.number}")
    pdf.set_author(invoice.seller.name)
    pdf.set_creator("Atelier Access")
    pdf.set_lang("fr-FR" if language == "fr" else "en-GB")
    pdf.set_creation_date(datetime.combine(invoice.issued_on, time(), tzinfo=UTC))
    pdf.add_page()
    _header(pdf, invoice, language)
    _table(pdf, invoice, language)
    _totals(pdf, invoice, language)
    return bytes(pdf.output())

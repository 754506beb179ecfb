"""Invoices as PDF: read back with pypdf, in French and English, with or without VAT."""

import io
from datetime import date

import pytest
from pypdf import PdfReader

from server.billing.invoices import Invoice, credit_note
from server.billing.pdf import render_invoice
from server.billing.rating import plan_fee_line, rate_usage
from tests.server.billing.sample import (
    ALICE,
    BOB,
    BOOK,
    CHLOE,
    MARCH,
    ORG_PAYER,
    OVERLOCKER,
    PLAN,
    PRINTER,
    SELLER_VAT,
    at,
    invoice_of,
    sale,
    session,
)


def member_invoice() -> Invoice:
    sessions = [
        session("s1", at(2, 9), 47, 12),
        session("s2", at(3, 15), 303),
        session("s3", at(4, 9), 95, machine=OVERLOCKER),
        session("s4", at(5, 9), 200, machine=PRINTER),
    ]
    rating = rate_usage(sessions, BOOK, plans={(ALICE.id, MARCH): PLAN}, sales=[sale("f", at(5, 10), 125)])
    return invoice_of((plan_fee_line(ALICE, PLAN, MARCH), *rating.lines))


def org_invoice() -> Invoice:
    sessions = [
        session("o1", at(2, 9), 62, member=BOB),
        session("o2", at(3, 9), 600, member=BOB),
        session("o3", at(2, 11), 30, member=CHLOE, machine=OVERLOCKER),
    ]
    return invoice_of(rate_usage(sessions, BOOK).lines, payer=ORG_PAYER, seller=SELLER_VAT)


def text_of(document: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(document))
    pages = [page.extract_text() for page in reader.pages]
    text = "\n".join(pages).replace("\u00a0", " ").replace("\u202f", " ")
    return " ".join(text.split()), len(reader.pages)


def test_a_french_invoice_of_an_association_not_subject_to_vat() -> None:
    invoice = member_invoice()
    text, pages = text_of(render_invoice(invoice))
    assert pages == 1
    for expected in (
        "Atelier Cœur de Fil",
        "12 rue des Tisserands",
        "SIRET : 123 456 789 00012",
        "FACTURE",
        "N° : 2026-000001",
        "Date : 01/04/2026",
        "Échéance : 16/04/2026",
        "Période : mars 2026",
        "Facturé à",
        "Alice Martin",
        "Membre n° M-0001",
        "Abonnement « Couture 10 h », mars 2026",
        "Inclus dans l'abonnement « Couture 10 h »",
        "Piqueuse plate Juki",
        "Temps de marche",
        "95 min",
        "4,50 €/h",
        "7,13 €",
        "Filament PLA",
        "125 g",
        "0,025 €/g",
        "Prix unitaire",
        "Total à payer",
        "TVA non applicable, art. 293 B du CGI",
        "Payable par prélèvement SEPA",
        "Page 1/1",
    ):
        assert expected in text, expected
    assert "TTC" not in text
    assert f"Total à payer {invoice.total_cents // 100},{invoice.total_cents % 100:02d} €" in text


def test_an_english_invoice() -> None:
    text, _ = text_of(render_invoice(member_invoice(), "en"))
    for expected in (
        "INVOICE",
        "No.: 2026-000001",
        "Due: 2026-04-16",
        "Period: March 2026",
        "Billed to",
        "Running time",
        "€4.50/h",
        "Total due",
        "TVA non applicable, art. 293 B du CGI",
        "(VAT not applicable, art. 293 B of the French tax code)",
        "Fingerprint SHA-256",
    ):
        assert expected in text, expected


def test_an_organisation_invoice_with_vat_per_line() -> None:
    invoice = org_invoice()
    text, _ = text_of(render_invoice(invoice))
    for expected in (
        "N° TVA : FR12987654321",
        "Collectif Mailles & Œuvres",
        "Organisation n° O-0007",
        "Bob Lefèvre — Temps de marche",
        "Chloé Cœurdevey — Temps de marche",
        "Bob Lefèvre — Plafond journalier atteint (25,00 € par jour)",
        "Prix unit. HT",
        "20 %",
        "Total HT",
        "TVA 20 %",
        "Total TTC",
        "Pénalités de retard",
    ):
        assert expected in text, expected
    assert "293 B" not in text


def test_a_credit_note_names_the_invoice_it_cancels() -> None:
    invoice = org_invoice()
    note = credit_note(invoice, number="2026-000002", issued_on=date(2026, 4, 20), previous_hash=invoice.hash)
    text, _ = text_of(render_invoice(note))
    assert "AVOIR" in text
    assert "Cet avoir annule la facture n° 2026-000001." in text
    assert "Total de l'avoir" in text
    assert "-60 min" in text


def test_a_long_invoice_runs_over_pages_with_its_headings() -> None:
    sessions = [
        session(f"s{day}-{hour}", at(day, hour), 45, member=BOB) for day in range(1, 29) for hour in (9, 14)
    ]
    invoice = invoice_of(rate_usage(sessions, BOOK).lines)
    text, pages = text_of(render_invoice(invoice))
    assert pages >= 2
    assert text.count("Désignation") == pages
    assert f"Page {pages}/{pages}" in text


def test_the_same_invoice_gives_the_same_bytes_and_embeds_its_font() -> None:
    document = render_invoice(member_invoice())
    assert document == render_invoice(member_invoice())
    assert document.startswith(b"%PDF-")
    assert b"DejaVu" in document


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="fr or en"):
        render_invoice(member_invoice(), "de")

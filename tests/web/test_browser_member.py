"""A member on a phone at the machine, in a real browser: their space, an invoice, the language
switch and the live view."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.web.conftest import PHONE, Served, screenshot, signed_in


def test_a_member_reads_their_space_on_a_phone(browser: Browser, served: Served) -> None:
    with signed_in(browser, served, served.workshop.member, viewport=PHONE) as page:
        expect(page).to_have_url(re.compile(r"/me$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Mon espace")
        # Why the last tap was refused, in words, with what to do.
        refusal = page.locator("#last-refusal")
        expect(refusal).to_contain_text("Surjeteuse Juki")
        expect(refusal).to_contain_text("Pas de certification pour cette machine")
        # Certifications with their end date; sessions with minutes and cost (billed, or estimated).
        certifications = page.get_by_role("table", name="Mes certifications et leur date de fin")
        expect(certifications).to_contain_text("Couture industrielle")
        expect(certifications).to_contain_text("Valable")
        sessions = page.get_by_role("table", name=re.compile("Mes dernières sessions"))
        expect(sessions.get_by_role("row")).to_have_count(6)  # the header and her 5 sessions
        expect(sessions).to_contain_text("Piqueuse Juki n°1")
        expect(sessions).to_contain_text("≈")
        expect(sessions).to_contain_text("45 min")
        invoices = page.get_by_role("table", name="Mes factures et avoirs")
        expect(invoices).to_contain_text(served.workshop.closed_period)
        screenshot(page, "member-phone-fr")
        link = invoices.get_by_role("link", name=re.compile("en PDF, en français")).first
        answer = page.request.get(str(link.get_attribute("href")))
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/pdf"
        assert answer.body().startswith(b"%PDF")
        # The language switch keeps the page.
        page.get_by_role("link", name="English").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("My space")
        expect(page.locator("#last-refusal")).to_contain_text("Not certified for this machine")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        page.get_by_role("link", name="Live workshop").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Live workshop")
        card = page.locator('[data-machine="embroidery-1"]')
        expect(card).to_contain_text("Locked out")
        expect(card).to_contain_text("Aiguille cassée")
        expect(page.locator('[data-machine="printer-1"]')).to_contain_text("Gateway offline")
        # Staff see who uses what; a member does not see the day's sessions by name.
        expect(page.get_by_role("table")).to_have_count(0)
        screenshot(page, "live-phone-en")


def test_signing_out_ends_the_session(browser: Browser, served: Served) -> None:
    with signed_in(browser, served, served.workshop.member) as page:
        page.get_by_role("button", name="Se déconnecter").click()
        expect(page.get_by_role("status")).to_have_text("Vous êtes déconnecté·e.")
        page.goto("/me")
        expect(page).to_have_url(re.compile(r"/login\?next=/me$"))

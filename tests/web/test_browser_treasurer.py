"""The treasurer in a real browser: close the month with its progress, invoices, a payment,
the SEPA, FEC and CSV exports, and the activity report's charts."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.web.conftest import Served, screenshot, signed_in


def test_the_treasurer_closes_the_month_and_collects(browser: Browser, served: Served) -> None:
    period = served.workshop.open_period
    with signed_in(browser, served, served.workshop.treasurer) as page:
        page.get_by_role("navigation", name="Sections").get_by_role("link", name="Trésorerie").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Trésorerie")
        page.get_by_role("navigation", name="Trésorerie").get_by_role(
            "link", name="Tarifs et forfaits"
        ).click()
        expect(page.get_by_role("table", name="Tarifs en vigueur et passés")).to_contain_text("6,00")
        page.get_by_role("link", name="Clôture du mois").click()
        expect(page.get_by_label("Mois à clôturer")).to_have_value(period)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Clôturer le mois").click()
        expect(page).to_have_url(re.compile(r"/billing/close/[\w-]+$"))
        expect(page.get_by_role("progressbar")).to_be_visible()
        expect(page.locator("#close-status")).to_have_attribute("data-phase", "done", timeout=30_000)
        expect(page.get_by_role("progressbar")).to_have_attribute("value", "100")
        expect(page.locator("#close-result")).to_contain_text("facture(s) émise(s)")
        screenshot(page, "treasurer-close-fr")
        page.get_by_role("link", name="Voir les factures").click()
        invoices = page.get_by_role("table", name=f"Factures et avoirs de {period}")
        chloe = invoices.get_by_role("row").filter(has_text="Chloé Bernard")
        number = chloe.get_by_role("cell").first.inner_text().strip()
        screenshot(page, "treasurer-invoices-fr")
        # A direct debit file for the month: Chloé signed a mandate.
        page.get_by_role("navigation", name="Trésorerie").get_by_role("link", name="Exports").click()
        page.get_by_label("Mois", exact=True).first.fill(period)
        page.get_by_role("button", name="Créer le fichier SEPA").click()
        expect(page.get_by_role("status")).to_contain_text("1 prélèvement(s)")
        with page.expect_download() as download:
            page.get_by_role("table", name="Fichiers SEPA créés").get_by_role("link").first.click()
        assert b"pain.008.001.02" in download.value.path().read_bytes()
        with page.expect_download() as download:
            page.get_by_role("button", name="Télécharger le FEC").click()
        assert download.value.suggested_filename.startswith("123456789FEC")
        with page.expect_download() as download:
            page.get_by_role("button", name="Télécharger le CSV").click()
        assert "Chloé Bernard" in download.value.path().read_text(encoding="utf-8")
        # Money in: the direct debit collected; a transfer for the other invoice.
        page.get_by_role("navigation", name="Trésorerie").get_by_role("link", name="Paiements").click()
        page.get_by_role("button", name="Marquer comme encaissé").click()
        expect(page.get_by_role("status")).to_contain_text("1 prélèvement(s)")
        expect(page.get_by_role("table", name="Derniers paiements")).to_contain_text(number)
        form = page.get_by_role("region", name="Enregistrer un paiement")
        form.get_by_label("Numéro de facture").fill("2099-000001")
        form.get_by_label("Montant (€)").fill("12,50")
        form.get_by_role("button", name="Enregistrer").click()
        expect(page.get_by_role("alert")).to_have_text("Introuvable : vérifiez ce que vous avez saisi.")


def test_the_activity_report_draws_its_charts(browser: Browser, served: Served) -> None:
    with signed_in(browser, served, served.workshop.treasurer, language="en") as page:
        page.goto("/lang/en?next=/billing/report")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Activity report")
        weekly = page.get_by_role("img", name=re.compile("Running hours per machine, over 12 weeks"))
        expect(weekly).to_be_visible()
        assert weekly.locator("rect").count() >= 1
        expect(page.get_by_role("img", name=re.compile("Running hours per sector"))).to_contain_text(
            "industrial-sewing"
        )
        expect(page.get_by_role("list", name="Legend")).to_contain_text("Piqueuse Juki n°1")
        screenshot(page, "treasurer-report-en")
        page.get_by_text("The same figures as a table").click()
        expect(page.get_by_role("table", name="Usage per machine per week")).to_be_visible()

"""A trainer at the office, in a real browser: certify a newcomer, revoke, what expires soon,
the sessions they supervised."""

from __future__ import annotations

import re
from datetime import date, timedelta

from playwright.sync_api import Browser, expect

from tests.web.conftest import Served, screenshot, signed_in


def test_a_trainer_certifies_and_revokes(browser: Browser, served: Served) -> None:
    with signed_in(browser, served, served.workshop.trainer) as page:
        page.get_by_role("navigation", name="Sections").get_by_role("link", name="Formation").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Formation")
        # Amina's certification, granted by this trainer, ends within 30 days.
        expiring = page.get_by_role("table", name=re.compile("Expire dans les 30 jours"))
        expect(expiring).to_contain_text("Amina Diallo")
        supervised = page.get_by_role("table", name="Sessions que j'ai supervisées")
        expect(supervised.get_by_role("row")).to_have_count(3)
        screenshot(page, "trainer-fr")
        form = page.get_by_role("region", name="Certifier un membre")
        form.get_by_label("Membre").select_option(label=f"Hugo Petit (n° {served.workshop.newcomer})")
        form.get_by_label("Compétence").select_option(label="Couture industrielle")
        form.get_by_label("Niveau").select_option(label="Supervisé")
        until = date.today() + timedelta(days=180)
        form.get_by_label(re.compile("Valable jusqu'au")).fill(until.isoformat())
        form.get_by_label(re.compile("Note")).fill("Initiation piqueuse plate, 2 h")
        form.get_by_role("button", name="Certifier").click()
        expect(page.get_by_role("status")).to_have_text("Hugo Petit est certifié·e en Couture industrielle.")
        trainees = page.get_by_role("table", name="Les certifications que j'ai délivrées")
        hugo = trainees.get_by_role("row").filter(has_text="Hugo Petit")
        expect(hugo).to_contain_text("Supervisé")
        expect(hugo).to_contain_text(until.strftime("%d/%m/%Y"))
        # Nobody certifies themself: said in words, nothing changed.
        amina = trainees.get_by_role("row").filter(has_text="Amina Diallo")
        amina.get_by_label(re.compile("Raison du retrait")).fill("Consignes de sécurité non respectées")
        amina.get_by_role("button", name="Retirer").click()
        expect(page.get_by_role("status")).to_have_text(
            "La certification de Amina Diallo en Couture industrielle est retirée."
        )
        expect(
            page.get_by_role("table", name="Les certifications que j'ai délivrées")
            .get_by_role("row")
            .filter(has_text="Amina Diallo")
        ).to_contain_text("Retirée")


def test_a_refusal_is_said_in_the_trainers_language(browser: Browser, served: Served) -> None:
    with signed_in(browser, served, served.workshop.trainer, language="en") as page:
        page.goto("/lang/en?next=/training")
        form = page.get_by_role("region", name="Certify a member")
        form.get_by_label("Member").select_option(
            label=f"Chloé Bernard (no. {served.workshop.member.member_id})"
        )
        form.get_by_label("Skill").select_option(label="Couture industrielle")
        form.get_by_role("button", name="Certify").click()
        expect(page.get_by_role("alert")).to_have_text("This member already holds this level in this skill.")

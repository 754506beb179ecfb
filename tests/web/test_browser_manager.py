"""The manager in a real browser, with the server on a real Mosquitto: the live view follows a
machine as its gateway says what it does, a badge tapped at a gateway shows up and is enrolled,
a machine is locked out (and its gateway told), members and organisations are added."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from protocol.messages import Command, CommandAction, MachineState, MachineStateName, decode, encode
from protocol.topics import Channel, topic
from server.settings import Settings
from tests.server.mqtt.fake_gateway import FakeGateway
from tests.services import Mosquitto
from tests.web.conftest import PHONE, Served, module_database, screenshot, seeded_database, serve, signed_in
from tests.web.workshop import UNKNOWN_BADGE


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto
) -> Iterator[Served]:
    """This module's app answers gateways through the broker (the other modules' do not)."""
    url = module_database(request, tmp_path_factory)
    site = f"web-{secrets.token_hex(3)}"
    workshop = seeded_database(url, site)
    with serve(Settings(database_url=url, site=site, mqtt_url=broker.url), workshop, mqtt=True) as running:
        yield running


@pytest.fixture
def gateway(served: Served, broker: Mosquitto) -> Iterator[FakeGateway]:
    fake = FakeGateway(broker.url, served.workshop.site, "textile")
    yield fake
    fake.close()


def _state(gateway: FakeGateway, name: MachineStateName, member: int | None = None) -> None:
    """Publish sew-1's state as its gateway does: retained, on the machine's own topic."""
    state = MachineState(
        machine="sew-1", state=name, member_id=member, session_id="s-web-1" if member else None,
        at_ms=time.time_ns() // 1_000_000,
    )  # fmt: skip
    gateway.publish_raw(
        topic(gateway.site, gateway.slug, Channel.MACHINE_STATE, "sew-1"), encode(state), retain=True
    )


def test_the_live_view_follows_the_machines(browser: Browser, served: Served, gateway: FakeGateway) -> None:
    member = served.workshop.member
    with signed_in(browser, served, served.workshop.manager) as page:
        expect(page).to_have_url(re.compile(r"/live$"))
        card = page.locator('[data-machine="sew-1"]')
        expect(card).to_have_attribute("data-status", "locked")
        # The gateway says Chloé's session started, then that the machine runs: no reload.
        _state(gateway, MachineStateName.UNLOCKED, member.member_id)
        expect(card).to_have_attribute("data-status", "idle")
        expect(card).to_contain_text(f"par {member.name}")
        _state(gateway, MachineStateName.RUNNING, member.member_id)
        expect(card).to_have_attribute("data-status", "in_use")
        expect(card).to_contain_text("En marche")
        expect(page.locator('[data-machine="printer-1"]')).to_have_attribute("data-status", "offline")
        expect(page.locator('[data-machine="embroidery-1"]')).to_have_attribute("data-status", "locked_out")
        today = page.get_by_role("table", name="Aujourd'hui")
        expect(today).to_contain_text(member.name)
        screenshot(page, "live-desktop-fr")
        _state(gateway, MachineStateName.LOCKED)
        expect(card).to_have_attribute("data-status", "locked")


def test_a_badge_tapped_at_a_gateway_is_enrolled(
    browser: Browser, served: Served, gateway: FakeGateway
) -> None:
    newcomer = served.workshop.newcomer
    with signed_in(browser, served, served.workshop.manager, viewport=PHONE) as page:
        page.goto("/manage/badges")
        expect(page.locator("#unknown-badge")).to_contain_text("En attente d'un badge inconnu")
        reply = gateway.ask("sew-1", UNKNOWN_BADGE)
        assert not reply.granted
        assert reply.reason.value == "unknown_badge"
        tap = page.locator("#unknown-badge")
        expect(tap).to_contain_text(UNKNOWN_BADGE)
        expect(tap).to_contain_text("Piqueuse Juki n°1")
        screenshot(page, "manager-badge-phone-fr")
        tap.get_by_role("link", name="Enregistrer ce badge").click()
        expect(page.get_by_label("Identifiant du badge")).to_have_value(UNKNOWN_BADGE)
        page.get_by_label("Membre", exact=True).select_option(label=f"Hugo Petit (n° {newcomer})")
        page.get_by_role("button", name="Enregistrer le badge").click()
        expect(page.get_by_role("status")).to_have_text(
            f"Le badge {UNKNOWN_BADGE} est enregistré pour Hugo Petit."
        )
        expect(page.locator("#unknown-badge")).to_contain_text("En attente d'un badge inconnu")
        # Enrolled: the same badge is now Hugo's at the machine (not trained: refused for that).
        assert gateway.ask("sew-1", UNKNOWN_BADGE).reason.value == "not_certified"


def test_the_manager_locks_a_machine_out(browser: Browser, served: Served, gateway: FakeGateway) -> None:
    gateway.client.subscribe(topic(served.workshop.site, "textile", Channel.COMMAND), 1)
    time.sleep(0.2)
    with signed_in(browser, served, served.workshop.manager) as page:
        page.goto("/manage/machines")
        gateways = page.get_by_role("table", name="Passerelles")
        expect(gateways.get_by_role("row").filter(has_text="Atelier textile")).to_contain_text("En ligne")
        expect(gateways.get_by_role("row").filter(has_text="Fablab")).to_contain_text("Perdue")
        expect(gateways).to_contain_text("atelier-gateway 0.1.0")
        row = page.locator('tr[data-machine="sew-1"]')
        row.get_by_label("Raison de la consignation de Piqueuse Juki n°1").fill("Courroie à changer")
        row.get_by_role("button", name="Consigner Piqueuse Juki n°1").click()
        expect(page.get_by_role("status")).to_contain_text("Piqueuse Juki n°1 est consignée")
        expect(page.locator('tr[data-machine="sew-1"]')).to_contain_text("Courroie à changer")
        screenshot(page, "manager-machines-fr")
        topic_name, payload = gateway.next()
        command = decode(Command, payload)
        assert topic_name.endswith("/command")
        assert (command.action, command.machine, command.reason) == (
            CommandAction.LOCK,
            "sew-1",
            "Courroie à changer",
        )
        page.goto("/live")
        expect(page.locator('[data-machine="sew-1"]')).to_have_attribute("data-status", "locked_out")
        page.goto("/manage/machines")
        page.get_by_role("button", name="Lever la consignation de Piqueuse Juki n°1").click()
        expect(page.get_by_role("status")).to_contain_text("La consignation de Piqueuse Juki n°1 est levée")


def test_the_manager_adds_a_member_and_an_organisation(browser: Browser, served: Served) -> None:
    with signed_in(browser, served, served.workshop.manager, language="en") as page:
        page.goto("/lang/en?next=/manage")
        form = page.get_by_role("form").filter(has=page.get_by_role("heading", name="New member"))
        form.get_by_label("Name").fill("Sofia Rossi")
        form.get_by_label("E-mail").fill("sofia@atelier.example")
        form.get_by_role("button", name="Add the member").click()
        expect(page.get_by_role("status")).to_have_text("Sofia Rossi is added.")
        expect(page.get_by_role("heading", level=1)).to_have_text("Sofia Rossi")
        page.get_by_label("Status").select_option("suspended")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Sofia Rossi's details are saved.")
        expect(page.locator(".lead")).to_contain_text("Suspended")
        page.get_by_role("navigation", name="Management").get_by_role("link", name="Organisations").click()
        page.get_by_label("Name").fill("Lycée La Martinière")
        page.get_by_role("button", name="Add the organisation").click()
        expect(page.get_by_role("status")).to_have_text("Organisation Lycée La Martinière is added.")
        section = page.get_by_role("region", name="Lycée La Martinière")
        section.get_by_label("Have Lycée La Martinière pay for a member").select_option(label="Chloé Bernard")
        section.get_by_role("button", name="Attach").click()
        expect(page.get_by_role("status")).to_have_text("Chloé Bernard is now paid for by the organisation.")
        expect(page.get_by_role("region", name="Lycée La Martinière")).to_contain_text("Chloé Bernard")
        page.goto("/manage")
        screenshot(page, "manager-members-en")

"""The message catalogues: the same keys and placeholders in both languages, every key the
pages say is there, and no template holds visible text of its own."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from protocol.messages import CertificationLevel, MachineStateName, Reason
from server.billing.books import PaymentKind
from server.billing.money import MinuteRounding
from server.models import GatewayState, MemberStatus
from server.training.listing import CertificationStatus
from server.web.i18n import LANGUAGES, Translator, accepted_language, catalogue, placeholders
from server.web.jobs import Phase
from server.web.live_view import Status

WEB = Path(__file__).resolve().parents[2] / "server" / "web"
TEMPLATES = sorted((WEB / "templates").rglob("*.html"))
SOURCES = sorted(WEB.rglob("*.py"))

# A literal key: _("a.b"), t("a.b"), ok="flash.x", error="error.x", or a catalogue key in quotes.
LITERAL_KEY = re.compile(r"""(?:\b_|\bt|\bself)\(\s*["']([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+)["']""")
FLASH_KEY = re.compile(
    r"""["']((?:flash|error|billing\.tab|manage\.tab|nav|login|close\.phase)\.[a-z0-9_]+)["']"""
)
# Keys made from a value: "prefix." ~ something; each prefix's values are listed here.
DYNAMIC = {
    "reason.": [r.value for r in Reason] + ["other"],
    "reason.help.": ["unknown_badge", "badge_disabled", "member_inactive", "not_certified", "other"],
    "level.": [level.value for level in CertificationLevel],
    "certification.status.": [s.value for s in CertificationStatus],
    "member.status.": [s.value for s in MemberStatus],
    "live.status.": [s.value for s in Status],
    "machines.state.": [s.value for s in MachineStateName],
    "gateways.state.": [s.value for s in GatewayState],
    "payment.": [k.value for k in PaymentKind],
    "rounding.": [r.value for r in MinuteRounding],
    "close.phase.": [p.value for p in Phase],
    "role.": ["member", "trainer", "treasurer", "manager"],
    "lang.": list(LANGUAGES),
}
DYNAMIC_USE = re.compile(r"""["']([a-z_][a-z0-9_.]*\.)["']\s*~""")


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*TEMPLATES, *SOURCES]:
        text = path.read_text(encoding="utf-8")
        keys |= set(LITERAL_KEY.findall(text))
        keys |= {key for key in FLASH_KEY.findall(text) if not key.endswith(".html")}  # not a template's name
        for prefix in DYNAMIC_USE.findall(text):
            assert prefix in DYNAMIC, f"{path.name}: say which values make keys from {prefix!r}"
            keys |= {prefix + value for value in DYNAMIC[prefix]}
    return keys


def test_both_catalogues_hold_the_same_keys_and_placeholders() -> None:
    french, english = catalogue("fr"), catalogue("en")
    assert sorted(set(french) ^ set(english)) == []
    for key, message in french.items():
        assert placeholders(message) == placeholders(english[key]), key
        assert message.strip(), key
        assert english[key].strip(), key


def test_every_key_the_pages_use_is_in_the_catalogues() -> None:
    missing = sorted(key for key in used_keys() if key not in catalogue("fr"))
    assert missing == []


class _Text(HTMLParser):
    """Visible text and the attributes people read, once Jinja's own syntax is taken out."""

    READ = ("alt", "title", "placeholder", "aria-label", "label", "value")

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        kind = dict(attrs).get("type")
        for name, value in attrs:
            if name in self.READ and value and not (name == "value" and kind in ("hidden", None)):
                self.found.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.found.append(data)


JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
WORDS = re.compile(r"[^\W\d_]{2,}")


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(WEB / "templates")))
def test_no_template_says_anything_of_its_own(template: Path) -> None:
    parser = _Text()
    parser.feed(JINJA.sub(" ", template.read_text(encoding="utf-8")))
    words = [text.strip() for text in parser.found if WORDS.search(text)]
    assert words == [], f"{template.name} says {words}: put it in the catalogues"


def test_the_browser_language_is_weighed() -> None:
    assert accepted_language("en-GB,en;q=0.9,fr;q=0.8") == "en"
    assert accepted_language("de-DE,de;q=0.9,fr-CH;q=0.5,en;q=0.4") == "fr"
    assert accepted_language("fr;q=0.2, en;q=0.3") == "en"
    assert accepted_language("de, it;q=0.5") is None
    assert accepted_language("en;q=0") is None
    assert accepted_language("en;q=bad, fr") == "fr"
    assert accepted_language(None) is None


def test_numbers_money_and_times_in_each_language() -> None:
    french, english = Translator("fr"), Translator("en")
    assert french.money(123456) == "1\u202f234,56\u00a0€"
    assert english.money(123456) == "€1,234.56"
    assert french.minutes(95 * 60_000) == "1 h 35"
    assert english.minutes(5 * 60_000 + 29_000) == "5 min"
    assert french.number(1234.5, 1) == "1\u202f234,5"
    assert english.percent(550) == "5.5\u00a0%"
    assert french("no.such.key") == "⟦no.such.key⟧"

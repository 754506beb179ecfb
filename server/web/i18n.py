"""The web interface's languages: one message catalogue per language, and how a request picks one.

Each catalogue is a TOML file in ``server/web/messages/`` (``fr.toml``, ``en.toml``) whose
nested tables flatten to dotted keys (``[nav] live = "..."`` is ``nav.live``). Templates
say every visible string through ``_("key", name=value)``; ``tests/web/test_i18n.py``
checks that both catalogues hold the same keys with the same placeholders, and that no
template holds text of its own.

The language of a request: the ``atelier_lang`` cookie (set by the switch in every page's
header), else the browser's ``Accept-Language``, else French.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request

from server.billing.money import Rate, format_cents, format_rate
from server.billing.periods import WORKSHOP_TZ

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
LANGUAGE_COOKIE = "atelier_lang"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= _flatten(value, f"{name}.")
        elif isinstance(value, str):
            flat[name] = value
        else:
            raise TypeError(f"message {name} is not text")
    return flat


@cache
def catalogue(language: str) -> dict[str, str]:
    """Every message of ``language``, by its dotted key."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalogue for {language!r}")
    text = resources.files("server.web").joinpath("messages", f"{language}.toml").read_text("utf-8")
    return _flatten(tomllib.loads(text))


def placeholders(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


def accepted_language(header: str | None) -> str | None:
    """The first of our languages the ``Accept-Language`` header asks for, by its weights."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, position, primary))
    return min(ranked)[2] if ranked else None


def language_of(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return accepted_language(request.headers.get("accept-language")) or DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    """``_`` in templates, and the formats of numbers, money and moments in one language."""

    language: str

    def __call__(self, key: str, /, **values: Any) -> str:
        message = catalogue(self.language).get(key)
        if message is None:
            # Visible, so that a test (and a reader) notices; never an error page.
            return f"⟦{key}⟧"
        return message.format(**values) if values else message

    def has(self, key: str) -> bool:
        return key in catalogue(self.language)

    def money(self, cents: int | None) -> str:
        return "—" if cents is None else format_cents(cents, self.language)

    def per_hour(self, rate: Rate) -> str:
        """A per-minute rate as the price of an hour."""
        return self("unit.per_hour", amount=format_rate(rate, 60, self.language))

    def percent(self, basis_points: int) -> str:
        return self.number(basis_points / 100, 1 if basis_points % 100 else 0) + "\u00a0%"

    def number(self, value: float, decimals: int = 0) -> str:
        text = f"{value:,.{decimals}f}"
        if self.language == "fr":
            text = text.replace(",", "\u202f").replace(".", ",")
        return text

    def minutes(self, ms: int | None) -> str:
        """A duration of ``ms`` as minutes (or hours and minutes), rounded to the minute."""
        if ms is None:
            return "—"
        total = round(ms / 60_000)
        hours, minutes = divmod(total, 60)
        if hours:
            return self("unit.hours_minutes", hours=hours, minutes=f"{minutes:02d}")
        return self("unit.minutes", minutes=minutes)

    def day(self, value: date | datetime | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, datetime):
            value = value.astimezone(WORKSHOP_TZ).date()
        return value.strftime("%d/%m/%Y") if self.language == "fr" else value.isoformat()

    def last_day(self, end: datetime | None) -> str:
        """The last day something ending at ``end`` still holds: "until the 21st" ends at midnight."""
        return "—" if end is None else self.day(end - timedelta(microseconds=1))

    def moment(self, value: datetime | None) -> str:
        """A moment in the workshop's time zone, to the minute."""
        if value is None:
            return "—"
        local = value.astimezone(WORKSHOP_TZ)
        return local.strftime("%d/%m/%Y %H:%M") if self.language == "fr" else local.strftime("%Y-%m-%d %H:%M")

    def clock(self, value: datetime | None) -> str:
        return "—" if value is None else value.astimezone(WORKSHOP_TZ).strftime("%H:%M")

    def iso(self, value: datetime | None) -> str:
        """For ``<time datetime=...>``: machine-readable, not shown."""
        return "" if value is None else value.isoformat(timespec="seconds")

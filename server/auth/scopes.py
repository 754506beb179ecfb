"""What an API token may be used for: its scopes.

A request needs both: a role of the member that allows it (:mod:`server.auth.policy`)
and, when it comes with an API token, a scope of that token that covers it. A browser
session has every scope: there, the member's roles alone decide.

- ``read``: every ``GET`` the member's roles allow. Each other scope includes it.
- ``training``: certify and revoke (trainers, managers).
- ``billing``: prices, plans, consumables and sales, organisations and partners
  (treasurers; managers for organisations, partners and sales).
- ``manage``: members, badges, skills, machines, gateways and lockouts, passwords,
  erasure (managers).
"""

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    READ = "read"
    TRAINING = "training"
    BILLING = "billing"
    MANAGE = "manage"


EVERY_SCOPE = frozenset(Scope)


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scopes from words, each separated by spaces or commas; a ValueError names an unknown one."""
    found: set[Scope] = set()
    for value in values:
        for word in value.replace(",", " ").split():
            try:
                found.add(Scope(word.strip().lower()))
            except ValueError:
                known = ", ".join(scope.value for scope in Scope)
                raise ValueError(f"unknown scope {word!r}: use {known}") from None
    if not found:
        raise ValueError("a token needs at least one scope")
    return frozenset(found)


def effective(scopes: Iterable[Scope]) -> frozenset[Scope]:
    """``scopes`` with ``read``, which every other scope includes."""
    held = frozenset(scopes)
    return held | {Scope.READ} if held else held


def format_scopes(scopes: Iterable[Scope]) -> str:
    """As stored: the scopes in their declared order, space-separated."""
    held = set(scopes)
    return " ".join(scope.value for scope in Scope if scope in held)

"""Identifiers that appear in topics: sites, gateways and machines."""

import re
from typing import Annotated

import msgspec

from protocol.errors import BadTopic

ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""Lower-case letters, digits and inner hyphens, 1 to 64 characters, as docs/protocol.md says.

Patterns are written ``^...$`` for the documentation and for other languages, where
``$`` is the end of the text. In Python ``$`` also matches before a final newline, so
the code checks them as :func:`whole_text` writes them.
"""


def whole_text(pattern: str) -> str:
    """``pattern`` (``^...$``) anchored at the very end of the text, as Python's ``\\Z`` does.

    msgspec checks a ``Meta(pattern=...)`` with ``re.search``: without this, ``"gw-1\\n"``
    would be an id.
    """
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(f"a pattern of the contract is anchored with ^ and $: {pattern!r}")
    return pattern.removesuffix("$") + r"\Z"


_ID = re.compile(whole_text(ID_PATTERN))

Ident = Annotated[str, msgspec.Meta(pattern=whole_text(ID_PATTERN))]
"""A site, gateway or machine id, as used in topics and payloads."""


def is_valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid id, else raise :class:`BadTopic`."""
    if not is_valid_id(value):
        raise BadTopic(f"invalid {what} {value!r}: use a-z, 0-9 and '-', 1 to 64 characters")
    return value

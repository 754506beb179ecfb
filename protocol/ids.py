"""Identifiers that appear in topics: sites, gateways and machines."""

import re
from typing import Annotated

from pydantic import StringConstraints

from protocol.errors import BadTopic

ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""Lower-case letters, digits and inner hyphens, 1 to 64 characters.

Pydantic checks it with Rust's regex, where ``$`` is the end of the text; in
Python, ``fullmatch`` is used, since Python's ``$`` also matches before a
final newline.
"""

_ID = re.compile(ID_PATTERN)

Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A site, gateway or machine id, as used in topics and payloads."""


def is_valid_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid id, else raise :class:`BadTopic`."""
    if not is_valid_id(value):
        raise BadTopic(f"invalid {what} {value!r}: use a-z, 0-9 and '-', 1 to 64 characters")
    return value

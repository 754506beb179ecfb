"""The contract's identifiers as pydantic types, for the server's settings and API bodies.

:mod:`protocol` checks them with msgspec (the gateway runs without pydantic:
docs/benchmarks.md); here pydantic checks the same patterns, with Rust's regex, where
``$`` is the end of the text.
"""

from typing import Annotated

from pydantic import StringConstraints

from protocol.allowlist import KEY_ID_PATTERN
from protocol.ids import ID_PATTERN

Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A site, gateway, machine or skill id (:data:`protocol.ids.Ident`)."""

KeyId = Annotated[str, StringConstraints(pattern=KEY_ID_PATTERN)]
"""The id of a signing key (:data:`protocol.allowlist.KeyId`)."""

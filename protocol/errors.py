"""Errors raised while reading something off the wire.

Each error also inherits the builtin it resembles (the gpiozero manner), so a
caller may catch either ``ProtocolError`` or ``ValueError``.
"""


class ProtocolError(Exception):
    """Root of every error raised by :mod:`protocol`."""


class BadTopic(ProtocolError, ValueError):
    """A topic that is not part of the contract, or has an invalid id in it."""


class BadPayload(ProtocolError, ValueError):
    """A payload that is too large, not JSON, or not of the expected schema."""

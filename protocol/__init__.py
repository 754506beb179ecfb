"""The MQTT contract shared by the gateway, the firmware bridge and the server.

Everything that crosses the broker is defined here, once: topic names
(:mod:`protocol.topics`), payload schemas (:mod:`protocol.messages`) and the
broker connection manners (:mod:`protocol.mqtt`). ``docs/protocol.md`` is the
human-readable version of this package.
"""

from protocol.errors import BadPayload, BadTopic, ProtocolError

PROTOCOL_VERSION = 1
"""Bumped on any incompatible change; it is the ``v1`` in ``atelier/v1/...``."""

__all__ = ["PROTOCOL_VERSION", "BadPayload", "BadTopic", "ProtocolError"]

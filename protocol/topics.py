"""Topic builders and the parser, under the versioned root ``atelier/v1``.

Every topic is ``atelier/v1/<site>/<gateway>/<channel>[/<machine>]``. A gateway
publishes and subscribes only below its own ``<site>/<gateway>`` prefix, which
lets a broker ACL confine each gateway to its own topics.
"""

from dataclasses import dataclass
from enum import StrEnum

from protocol.errors import BadTopic
from protocol.ids import check_id

ROOT = "atelier/v1"


class Channel(StrEnum):
    """The last part(s) of a topic: what flows there. See docs/protocol.md."""

    STATUS = "status"  # gateway -> all, retained, QoS 1, with a last will
    MACHINE_STATE = "machine"  # gateway -> all, retained, QoS 1: machine/<machine>
    ACCESS_REQUEST = "access/request"  # gateway -> server, QoS 1
    ACCESS_REPLY = "access/reply"  # server -> gateway, QoS 1
    EVENTS = "events"  # gateway -> server, QoS 1
    EVENTS_ACK = "events/ack"  # server -> gateway, QoS 1
    COMMAND = "command"  # server -> gateway, QoS 1, never retained
    TELEMETRY = "telemetry"  # gateway -> server, QoS 0
    CERTIFY_REQUEST = "certify/request"  # gateway -> server, QoS 1: a trainer certifies at the machine
    CERTIFY_REPLY = "certify/reply"  # server -> gateway, QoS 1
    ALLOWLIST = "allowlist"  # server -> gateway, retained, QoS 1: the signed snapshot for offline decisions


@dataclass(frozen=True, slots=True)
class TopicAddress:
    """A parsed topic: who it belongs to and what flows on it."""

    site: str
    gateway: str
    channel: Channel
    machine: str | None = None


def topic(site: str, gateway: str, channel: Channel, machine: str | None = None) -> str:
    """Build the topic of ``channel`` for a gateway (and a machine, for its state)."""
    check_id(site, "site id")
    check_id(gateway, "gateway id")
    base = f"{ROOT}/{site}/{gateway}/{channel.value}"
    if channel is Channel.MACHINE_STATE:
        if machine is None:
            raise BadTopic("the machine state topic needs a machine id")
        return f"{base}/{check_id(machine, 'machine id')}"
    if machine is not None:
        raise BadTopic(f"the {channel.value} topic takes no machine id")
    return base


def subscription(channel: Channel, site: str = "+", gateway: str = "+") -> str:
    """A subscription filter for ``channel``, for one or every site and gateway.

    ``site`` and ``gateway`` may be ``+`` (any); the machine state channel
    always matches every machine of the gateway.
    """
    for value, what in ((site, "site id"), (gateway, "gateway id")):
        if value != "+":
            check_id(value, what)
    base = f"{ROOT}/{site}/{gateway}/{channel.value}"
    return f"{base}/+" if channel is Channel.MACHINE_STATE else base


def shared(group: str, filter_: str) -> str:
    """Wrap a filter in an MQTT shared subscription (``$share/<group>/...``)."""
    check_id(group, "shared subscription group")
    return f"$share/{group}/{filter_}"


_BY_SUFFIX = {tuple(c.value.split("/")): c for c in Channel if c is not Channel.MACHINE_STATE}


def parse_topic(name: str) -> TopicAddress:
    """Parse a topic of the contract, or raise :class:`BadTopic`."""
    parts = name.split("/")
    if len(parts) < 5 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise BadTopic(f"not an {ROOT} topic: {name!r}")
    site = check_id(parts[2], "site id")
    gateway = check_id(parts[3], "gateway id")
    rest = tuple(parts[4:])
    if len(rest) == 2 and rest[0] == Channel.MACHINE_STATE.value:
        return TopicAddress(site, gateway, Channel.MACHINE_STATE, check_id(rest[1], "machine id"))
    channel = _BY_SUFFIX.get(rest)
    if channel is None:
        raise BadTopic(f"unknown channel {'/'.join(rest)!r} in {name!r}")
    return TopicAddress(site, gateway, channel)


QOS: dict[Channel, int] = {
    Channel.STATUS: 1,
    Channel.MACHINE_STATE: 1,
    Channel.ACCESS_REQUEST: 1,
    Channel.ACCESS_REPLY: 1,
    Channel.EVENTS: 1,
    Channel.EVENTS_ACK: 1,
    Channel.COMMAND: 1,
    Channel.TELEMETRY: 0,
    Channel.CERTIFY_REQUEST: 1,
    Channel.CERTIFY_REPLY: 1,
    Channel.ALLOWLIST: 1,
}
"""Decisions, usage and commands at least once; telemetry at most once."""

RETAINED: frozenset[Channel] = frozenset({Channel.STATUS, Channel.MACHINE_STATE, Channel.ALLOWLIST})
"""Only states are retained (and the allowlist, a state of the server's, so that a gateway
that connects while the server is down still gets the latest); requests, events and
commands never are."""

"""Hostile MQTT input to the server's handlers: malformed, oversized and ill-typed payloads, bad
topics. Nothing raises, each rejection is logged, and nothing in the database changes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import ProtocolError
from protocol.messages import (
    MAX_PAYLOAD_BYTES,
    AccessRequest,
    CertifyRequest,
    EventAck,
    GatewayStatus,
    Message,
    Telemetry,
    UsageEvent,
    decode,
)
from protocol.topics import Channel, topic
from server.db import SessionFactory
from server.models import (
    AccessDecision,
    AuditEntry,
    Certification,
    Gateway,
    GatewayEvent,
    UsageSession,
)
from server.mqtt.handlers import Handlers
from tests.server.conftest import NOW, Workshop

MODELS: dict[Channel, type[Message]] = {
    Channel.ACCESS_REQUEST: AccessRequest,
    Channel.CERTIFY_REQUEST: CertifyRequest,
    Channel.EVENTS: UsageEvent,
    Channel.STATUS: GatewayStatus,
    Channel.TELEMETRY: Telemetry,
}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a hostile or broken peer might put in any field.
hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.sampled_from(["", "\x00", "'; DROP TABLE members; --", "A" * 5000, "../../etc/passwd", "\ud7ff"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
FIELDS = sorted({field.name for model in MODELS.values() for field in msgspec.structs.fields(model)})


def state(session_factory: SessionFactory) -> tuple[Any, ...]:
    """Everything a message could change."""
    with session_factory() as db:
        counts = tuple(
            db.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (AccessDecision, AuditEntry, Certification, GatewayEvent, UsageSession)
        )
        gateways = tuple(
            db.execute(sa.select(Gateway.slug, Gateway.state, Gateway.boot).order_by(Gateway.slug))
        )
    return (*counts, gateways)


def payloads() -> st.SearchStrategy[bytes]:
    objects = st.dictionaries(st.sampled_from(FIELDS), hostile, max_size=12).map(
        lambda fields: json.dumps(fields, allow_nan=True).encode()
    )
    return st.one_of(
        st.binary(max_size=300),
        objects,
        st.binary(min_size=MAX_PAYLOAD_BYTES + 1, max_size=MAX_PAYLOAD_BYTES + 64),
        st.sampled_from([b"", b"null", b"[]", b"{}", b'{"seq": 1e400}', b"\xff\xfe", b'{"a":' * 2000]),
    )


def _valid(channel: Channel, payload: bytes) -> bool:
    try:
        decode(MODELS[channel], payload)
    except ProtocolError:
        return False
    return True


@dataclass(frozen=True)
class Target:
    handlers: Handlers
    session_factory: SessionFactory
    workshop: Workshop

    def topic(self, channel: Channel) -> str:
        return topic(self.workshop.site, self.workshop.gateway, channel)


@pytest.fixture
def target(session_factory: SessionFactory, workshop: Workshop) -> Target:
    return Target(Handlers(workshop.site, session_factory, lambda: NOW, 5000), session_factory, workshop)


@FUZZ
@given(channel=st.sampled_from(sorted(MODELS)), payload=payloads())
def test_malformed_payloads_are_refused_without_a_crash_or_a_change(
    target: Target, caplog: pytest.LogCaptureFixture, channel: Channel, payload: bytes
) -> None:
    if _valid(channel, payload):
        return  # a well-formed message may change things; that is what the other tests are about
    before = state(target.session_factory)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="server.mqtt.handlers"):
        outgoing = target.handlers.handle(target.topic(channel), payload)
    assert state(target.session_factory) == before
    if not (channel is Channel.STATUS and payload == b""):  # an empty status clears a retained one
        assert caplog.records, "every rejection is logged"
    if outgoing is None:
        return
    # Answered when refused, and only to its gateway: an access request (bad_request), and an
    # event whose seq can be read (a refusal for good, so that the gateway stops replaying it).
    if channel is Channel.EVENTS:
        assert outgoing.topic == target.topic(Channel.EVENTS_ACK)
        assert decode(EventAck, outgoing.payload).ok is False
    else:
        assert channel is Channel.ACCESS_REQUEST
        assert outgoing.topic == target.topic(Channel.ACCESS_REPLY)


@FUZZ
@given(name=st.text(max_size=120), payload=st.binary(max_size=64))
def test_any_topic_is_handled_without_a_crash(target: Target, name: str, payload: bytes) -> None:
    before = state(target.session_factory)
    target.handlers.handle(name, payload)
    target.handlers.handle(name, payload, retained=True)
    assert state(target.session_factory) == before


@FUZZ
@given(payload=payloads())
def test_messages_for_unknown_gateways_or_other_sites_change_nothing(target: Target, payload: bytes) -> None:
    before = state(target.session_factory)
    site, gateway = target.workshop.site, target.workshop.gateway
    for channel in MODELS:
        target.handlers.handle(topic(site, "gw-nobody", channel), payload)
        target.handlers.handle(topic("other-site", gateway, channel), payload)
    assert state(target.session_factory) == before

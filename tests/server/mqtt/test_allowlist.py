"""Signed allowlists through the real broker: published, verified, kept in step, versioned."""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.allowlist import (
    MAX_ALLOWLIST_BYTES,
    Allowlist,
    BadAllowlist,
    SignedAllowlist,
    accept,
    receive,
    verify,
)
from protocol.messages import CertificationLevel, GatewayState, GatewayStatus, decode
from protocol.mqtt import BrokerURL, make_client
from protocol.topics import Channel, topic
from server import workshop as manage
from server.db import SessionFactory
from server.models import Gateway
from server.mqtt import MqttService, allowlists
from server.settings import Settings
from server.signing import SigningKey, create_key_file, load_signing_key
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import TIMEOUT_S, FakeGateway
from tests.services import Mosquitto

_numbers = iter(range(1, 1_000_000))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Watcher:
    """A gateway's allowlist subscription, as a queue of what arrives (retained first)."""

    def __init__(self, broker_url: str, site: str, gateway: str) -> None:
        self.topic = topic(site, gateway, Channel.ALLOWLIST)
        self.received: queue.Queue[bytes] = queue.Queue()
        subscribed = queue.Queue[bool]()
        url = BrokerURL.parse(broker_url)
        self.client = make_client(url, f"watch-{site}-{gateway}-{next(_numbers)}")
        self.client.on_connect = lambda client, *args: client.subscribe(self.topic, 1)
        self.client.on_subscribe = lambda *args: subscribed.put(True)
        self.client.on_message = self._on_message
        self.client.connect(url.host, url.port)
        self.client.loop_start()
        subscribed.get(timeout=TIMEOUT_S)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        assert message.qos == 1
        self.received.put(bytes(message.payload))

    def next_payload(self, timeout: float = TIMEOUT_S) -> bytes:
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no allowlist on {self.topic} within {timeout} s") from None

    def next_where(self, keys: dict[str, Any], condition: Callable[[Allowlist], bool]) -> Allowlist:
        """The first snapshot to arrive for which ``condition`` holds, within the timeout."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            allowlist = receive(self.next_payload(max(0.01, deadline - time.monotonic())), keys)
            if condition(allowlist):
                return allowlist

    def nothing_within(self, seconds: float) -> bool:
        try:
            self.received.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    path = tmp_path / "site.pem"
    create_key_file(path)
    found = load_signing_key(path, "site-1")
    assert found is not None
    return found


@pytest.fixture
def keys(key: SigningKey) -> dict[str, Any]:
    return {key.key_id: key.public}


@pytest.fixture
def signed_settings(settings: Settings, key: SigningKey, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "signing_key_file": tmp_path / "site.pem",
            "signing_key_id": key.key_id,
            "allowlist_refresh_s": 0.2,
        }
    )


@pytest.fixture
def signing_service(
    signed_settings: Settings, session_factory: SessionFactory, workshop: Workshop
) -> Iterator[MqttService]:
    service = MqttService(signed_settings, session_factory)
    service.start()
    assert service.wait_until_ready(TIMEOUT_S)
    yield service
    service.stop()


@pytest.fixture
def watcher(broker: Mosquitto, workshop: Workshop) -> Iterator[Watcher]:
    watching = Watcher(broker.url, workshop.site, workshop.gateway)
    yield watching
    watching.close()


def version_in_db(session_factory: SessionFactory, slug: str) -> int:
    with session_factory() as db:
        return int(db.scalar(sa.select(Gateway.allowlist_version).where(Gateway.slug == slug)) or 0)


def test_a_gateway_gets_a_snapshot_it_can_verify(
    signing_service: MqttService, watcher: Watcher, workshop: Workshop, keys: dict[str, Any]
) -> None:
    payload = watcher.next_payload()
    signed = decode(SignedAllowlist, payload, limit=len(payload))
    assert signed.key_id == "site-1"
    allowlist = verify(signed, keys)
    assert accept(allowlist, None, site=workshop.site, gateway=workshop.gateway, now_ms=now_ms()) is allowlist
    assert allowlist.version >= 1
    assert allowlist.expires_at_ms - allowlist.issued_at_ms == 7 * 86_400_000
    assert [m.machine for m in allowlist.machines] == ["cutter-1", "free-1", "overlocker-1", "sewing-1"]
    alice = allowlist.entry(workshop.alice_badge)
    assert alice is not None
    assert alice.member_id == workshop.alice
    assert allowlist.entry(workshop.carol_badge) is None  # suspended


def test_changes_show_within_seconds_with_a_higher_version(
    signing_service: MqttService,
    watcher: Watcher,
    workshop: Workshop,
    keys: dict[str, Any],
    session_factory: SessionFactory,
) -> None:
    first = receive(watcher.next_payload(), keys)
    assert first.entry(workshop.bob_badge) is not None
    assert "sewing-1" not in {g.machine for g in first.entry(workshop.bob_badge).grants}  # type: ignore[union-attr]
    started = time.monotonic()
    with session_factory() as db:
        manage.grant_certification(db, workshop.bob, "industrial-sewing", level=CertificationLevel.AUTONOMOUS)
        db.commit()

    def bob_sews(allowlist: Allowlist) -> bool:
        bob = allowlist.entry(workshop.bob_badge)
        return bob is not None and "sewing-1" in {g.machine for g in bob.grants}

    granted = watcher.next_where(keys, bob_sews)
    assert time.monotonic() - started < 5
    assert granted.version > first.version
    started = time.monotonic()
    with session_factory() as db:
        manage.set_lockout(db, "sewing-1", True, "needle broken")
        db.commit()

    def locked(allowlist: Allowlist) -> bool:
        machine = allowlist.machine("sewing-1")
        return machine is not None and machine.locked_out

    locked_out = watcher.next_where(keys, locked)
    assert time.monotonic() - started < 5
    assert locked_out.version > granted.version
    assert locked_out.machine("sewing-1").lockout_reason == "needle broken"  # type: ignore[union-attr]
    # Nothing changes: nothing more is published.
    assert watcher.nothing_within(1.0)
    assert version_in_db(session_factory, workshop.gateway) == locked_out.version


def test_a_certification_at_the_machine_reaches_the_snapshot(
    signing_service: MqttService,
    watcher: Watcher,
    broker: Mosquitto,
    workshop: Workshop,
    keys: dict[str, Any],
) -> None:
    first = receive(watcher.next_payload(), keys)
    gateway = FakeGateway(broker.url, workshop.site, workshop.gateway)
    try:
        assert gateway.ask("sewing-1", workshop.trainer_badge).trainer
        assert gateway.ask_certify("sewing-1", workshop.trainer_badge, workshop.bob_badge).certified
    finally:
        gateway.close()
    certified = watcher.next_where(
        keys,
        lambda a: any(g.machine == "sewing-1" for g in a.entry(workshop.bob_badge).grants),  # type: ignore[union-attr]
    )
    assert certified.version > first.version


def test_a_tampered_snapshot_or_a_foreign_key_fails_verification(
    signing_service: MqttService, watcher: Watcher, workshop: Workshop, keys: dict[str, Any]
) -> None:
    payload = watcher.next_payload()
    signed = decode(SignedAllowlist, payload, limit=len(payload))
    verify(signed, keys)
    # One member more, or a later expiry: the signature no longer matches.
    document = json.loads(signed.snapshot)
    document["expires_at_ms"] += 86_400_000
    tampered = msgspec.structs.replace(signed, snapshot=json.dumps(document, separators=(",", ":")))
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(tampered, keys)
    flipped = msgspec.structs.replace(signed, snapshot=signed.snapshot.replace("Alice", "Alicia"))
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(flipped, keys)
    # Signed by another key, or by one the gateway does not know.
    stranger = SigningKey("site-1", Ed25519PrivateKey.generate())
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(signed, {"site-1": stranger.public})
    with pytest.raises(BadAllowlist, match="does not know"):
        verify(signed, {"site-2": next(iter(keys.values()))})
    with pytest.raises(BadAllowlist, match=r"not base64|bad signature"):
        verify(msgspec.structs.replace(signed, signature="!!" + signed.signature[2:]), keys)


def test_versions_grow_across_a_restart(
    signed_settings: Settings,
    session_factory: SessionFactory,
    workshop: Workshop,
    watcher: Watcher,
    keys: dict[str, Any],
) -> None:
    versions: list[int] = []
    for _ in range(2):
        service = MqttService(signed_settings, session_factory)
        service.start()
        try:
            assert service.wait_until_ready(TIMEOUT_S)
            # A start issues a snapshot even though nothing changed: the broker may have lost it.
            versions.append(watcher.next_where(keys, lambda a: a.version > max(versions, default=0)).version)
        finally:
            service.stop()
    assert versions[1] > versions[0]
    assert version_in_db(session_factory, workshop.gateway) == versions[1]


def test_a_gateway_coming_online_gets_a_new_snapshot(
    signing_service: MqttService,
    watcher: Watcher,
    broker: Mosquitto,
    workshop: Workshop,
    keys: dict[str, Any],
) -> None:
    first = receive(watcher.next_payload(), keys)
    assert watcher.nothing_within(0.5)
    gateway = FakeGateway(broker.url, workshop.site, workshop.gateway)
    try:
        gateway.status(GatewayStatus(state=GatewayState.ONLINE, boot=7, at_ms=now_ms()))
        reborn = receive(watcher.next_payload(), keys)
        assert reborn.version > first.version
        assert reborn.entries == first.entries
        # The same boot saying online again (its backlog emptied, say) is no birth.
        gateway.status(GatewayStatus(state=GatewayState.ONLINE, boot=7, at_ms=now_ms(), backlog=0))
        assert watcher.nothing_within(1.0)
    finally:
        gateway.publish_raw(topic(workshop.site, workshop.gateway, Channel.STATUS), b"", retain=True)
        gateway.close()


def test_unknown_gateways_get_nothing(
    signing_service: MqttService, broker: Mosquitto, workshop: Workshop
) -> None:
    stranger = Watcher(broker.url, workshop.site, "gw-nowhere")
    gateway = FakeGateway(broker.url, workshop.site, "gw-nowhere")
    try:
        gateway.status(GatewayStatus(state=GatewayState.ONLINE, boot=1, at_ms=now_ms()))
        assert stranger.nothing_within(1.5)
    finally:
        gateway.publish_raw(topic(workshop.site, "gw-nowhere", Channel.STATUS), b"", retain=True)
        gateway.close()
        stranger.close()


def test_two_servers_never_issue_the_same_version(
    signed_settings: Settings,
    session_factory: SessionFactory,
    workshop: Workshop,
    watcher: Watcher,
    keys: dict[str, Any],
) -> None:
    shared = signed_settings.model_copy(update={"mqtt_shared_group": f"servers-{workshop.site}"})
    services = [MqttService(shared, session_factory) for _ in range(2)]
    for service in services:
        service.start()
    try:
        for service in services:
            assert service.wait_until_ready(TIMEOUT_S)
        for number in range(4):
            with session_factory() as db:
                manage.set_lockout(db, "free-1", number % 2 == 0, f"change {number}")
                db.commit()
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        for service in services:
            service.stop()
    seen = []
    while not watcher.received.empty():
        seen.append(receive(watcher.received.get(), keys))
    versions = [allowlist.version for allowlist in seen]
    assert len(versions) == len(set(versions)), versions
    # The version that ends up retained is the latest the database issued, with the latest content.
    last = max(seen, key=lambda allowlist: allowlist.version)
    assert last.version == version_in_db(session_factory, workshop.gateway)
    assert last.machine("free-1").locked_out is False  # type: ignore[union-attr]


def test_without_a_key_nothing_is_published_and_the_log_says_so(
    settings: Settings,
    session_factory: SessionFactory,
    workshop: Workshop,
    watcher: Watcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    assert settings.signing_key_file is None
    service = MqttService(settings, session_factory)
    service.start()
    try:
        assert service.wait_until_ready(TIMEOUT_S)
        assert service.allowlists is None
        assert service.allowlists_connected is None
        assert watcher.nothing_within(1.0)
    finally:
        service.stop()
    assert caplog.text.count("no allowlist is published") == 1


def test_a_snapshot_over_what_gateways_accept_is_not_published(
    *,
    signing_service: MqttService,
    watcher: Watcher,
    keys: dict[str, Any],
    session_factory: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher.next_payload()
    caplog.set_level(logging.ERROR)
    monkeypatch.setattr(allowlists, "MAX_SIGNED_BYTES", 100)
    with session_factory() as db:
        manage.set_lockout(db, "free-1", True, "unplugged")
        db.commit()
    assert watcher.nothing_within(1.5)
    assert "bytes, over the 100 a gateway accepts: not published" in caplog.text
    # Tried again, less and less often (not at every refresh), and published once it fits.
    tries = caplog.text.count("of " + f"{signing_service.allowlists.site}/gw-atelier is")  # type: ignore[union-attr]
    assert 1 <= tries <= 4
    monkeypatch.setattr(allowlists, "MAX_SIGNED_BYTES", MAX_ALLOWLIST_BYTES + 1024)
    latest = receive(watcher.next_payload(), keys)
    assert latest.machine("free-1").locked_out  # type: ignore[union-attr]

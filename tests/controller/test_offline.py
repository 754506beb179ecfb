"""Deciding without the server: the signed allowlist, the offline policies, and the interlock's
offline path; checkpoints that let a crashed gateway close its sessions; the hard limit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller import inbox
from controller.actions import EndReason, SendRequest, SessionEvent, SwitchOff, SwitchOn
from controller.clock import ManualClock
from controller.config import BadConfig, OfflinePolicy
from controller.gateway import Gateway
from controller.hardware.gpio import LedIndicator
from controller.hardware.interfaces import Signal
from controller.journal import Journal
from controller.machine import MachineRules
from controller.offline import AllowlistKeeper, ServerWatch, decide
from protocol.allowlist import (
    Allowlist,
    AllowlistEntry,
    AllowlistGrant,
    AllowlistMachine,
    BadAllowlist,
    public_key_text,
    sign,
)
from protocol.messages import (
    AccessReply,
    AccessRequest,
    CertificationLevel,
    DecidedBy,
    EventKind,
    MachineStateName,
    Reason,
    encode,
)
from protocol.topics import Channel
from tests.controller.interlock import (
    BADGE,
    OTHER,
    RULES,
    TRAINER,
    Bench,
    durations,
    events,
    only_event,
    wall,
)
from tests.controller.responder import MEMBER_BADGE, MEMBER_ID, Responder
from tests.controller.support import gateway_config, settle
from tests.services import Mosquitto, free_port

NOW = 1_750_000_000_000
KEY = Ed25519PrivateKey.generate()
KEYS = {"site-1": public_key_text(KEY.public_key())}
MANAGER = "0A0A0A0A"
PREPAID = "0B0B0B0B"
EXPIRED = "0C0C0C0C"
SUPERVISED = "0D0D0D0D"


def snapshot(
    *,
    version: int = 1,
    site: str = "lyon",
    gateway: str = "gw-1",
    expires_at_ms: int = NOW + 86_400_000,
    locked_out: bool = False,
    machine: str = "sew-1",
) -> Allowlist:
    def grant(
        level: CertificationLevel = CertificationLevel.AUTONOMOUS, until: int | None = None
    ) -> AllowlistGrant:
        return AllowlistGrant(machine=machine, level=level, until_ms=until)

    return Allowlist(
        site=site,
        gateway=gateway,
        version=version,
        issued_at_ms=NOW - 1000,
        expires_at_ms=expires_at_ms,
        machines=[AllowlistMachine(machine=machine, locked_out=locked_out, lockout_reason="needle guard")],
        entries=[
            AllowlistEntry(badge=BADGE, member_id=7, member_name="Camille", grants=[grant()]),
            AllowlistEntry(badge=TRAINER, member_id=3, grants=[grant(CertificationLevel.TRAINER)]),
            AllowlistEntry(badge=MANAGER, member_id=1, manager=True),
            AllowlistEntry(badge=PREPAID, member_id=8, grants=[grant()], max_minutes=0),
            AllowlistEntry(badge=EXPIRED, member_id=9, grants=[grant(until=NOW - 1)]),
            AllowlistEntry(badge=SUPERVISED, member_id=11, grants=[grant(CertificationLevel.SUPERVISED)]),
        ],
    )


def request(badge: str = BADGE, supervisor: str | None = None, machine: str = "sew-1") -> AccessRequest:
    return AccessRequest(
        request_id="r-1",
        machine=machine,
        badge=badge,
        sent_at_ms=NOW,
        expires_at_ms=NOW + 500,
        supervisor_badge=supervisor,
    )


def verdict(reply: AccessReply) -> tuple[bool, Reason]:
    return reply.granted, reply.reason


# --- the decision -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("badge", "supervisor", "expected"),
    [
        (BADGE, None, (True, Reason.GRANTED)),
        (TRAINER, None, (True, Reason.GRANTED)),
        (OTHER, None, (False, Reason.UNKNOWN_BADGE)),
        (MANAGER, None, (False, Reason.NOT_CERTIFIED)),
        (PREPAID, None, (False, Reason.INSUFFICIENT_BALANCE)),
        (EXPIRED, None, (False, Reason.CERTIFICATION_EXPIRED)),
        (SUPERVISED, None, (False, Reason.SUPERVISION_REQUIRED)),
        (SUPERVISED, BADGE, (False, Reason.SUPERVISION_REQUIRED)),
        (SUPERVISED, TRAINER, (True, Reason.GRANTED)),
    ],
)
def test_the_cache_policy_admits_what_the_snapshot_grants(
    badge: str, supervisor: str | None, expected: tuple[bool, Reason]
) -> None:
    reply = decide(snapshot(), OfflinePolicy.CACHE, request(badge, supervisor), NOW)
    assert verdict(reply) == expected
    assert reply.request_id == "r-1"


def test_a_cached_grant_carries_the_member_trainer_supervisor_and_prepaid_limit() -> None:
    camille = decide(snapshot(), OfflinePolicy.CACHE, request(), NOW)
    assert (camille.member_id, camille.member_name, camille.trainer) == (7, "Camille", False)
    trainer = decide(snapshot(), OfflinePolicy.CACHE, request(TRAINER), NOW)
    assert trainer.trainer
    supervised = decide(snapshot(), OfflinePolicy.CACHE, request(SUPERVISED, TRAINER), NOW)
    assert supervised.supervisor_id == 3
    limited = msgspec.structs.replace(
        snapshot(),
        entries=[
            AllowlistEntry(badge=BADGE, member_id=7, grants=snapshot().entries[0].grants, max_minutes=42)
        ],
    )
    assert decide(limited, OfflinePolicy.CACHE, request(), NOW).max_minutes == 42


def test_the_managers_policy_admits_only_managers() -> None:
    assert verdict(decide(snapshot(), OfflinePolicy.MANAGERS, request(MANAGER), NOW)) == (
        True,
        Reason.GRANTED,
    )
    refused = decide(snapshot(), OfflinePolicy.MANAGERS, request(BADGE), NOW)
    assert verdict(refused) == (False, Reason.SERVER_UNREACHABLE)
    assert "managers" in refused.message


def test_a_prepaid_manager_without_balance_is_refused_under_the_managers_policy() -> None:
    broke = msgspec.structs.replace(
        snapshot(), entries=[AllowlistEntry(badge=MANAGER, member_id=1, manager=True, max_minutes=0)]
    )
    refused = decide(broke, OfflinePolicy.MANAGERS, request(MANAGER), NOW)
    assert verdict(refused) == (False, Reason.INSUFFICIENT_BALANCE)


def test_the_deny_policy_admits_nobody() -> None:
    for badge in (BADGE, MANAGER, TRAINER):
        assert verdict(decide(snapshot(), OfflinePolicy.DENY, request(badge), NOW)) == (
            False,
            Reason.SERVER_UNREACHABLE,
        )


def test_no_snapshot_an_expired_one_or_a_lockout_refuse_everyone() -> None:
    assert verdict(decide(None, OfflinePolicy.CACHE, request(), NOW)) == (False, Reason.SERVER_UNREACHABLE)
    stale = snapshot(expires_at_ms=NOW)
    assert verdict(decide(stale, OfflinePolicy.CACHE, request(), NOW)) == (False, Reason.SERVER_UNREACHABLE)
    locked = decide(snapshot(locked_out=True), OfflinePolicy.MANAGERS, request(MANAGER), NOW)
    assert verdict(locked) == (False, Reason.MACHINE_LOCKED_OUT)
    assert "needle guard" in locked.message
    elsewhere = decide(snapshot(), OfflinePolicy.CACHE, request(machine="print-1"), NOW)
    assert verdict(elsewhere) == (False, Reason.UNKNOWN_MACHINE)


# --- the keeper ---------------------------------------------------------------------------------


def signed(allowlist: Allowlist, key: Ed25519PrivateKey = KEY, key_id: str = "site-1") -> bytes:
    return encode(sign(allowlist, key, key_id))


def keeper(tmp_path: Path, keys: dict[str, str] = KEYS) -> AllowlistKeeper:
    return AllowlistKeeper(keys, tmp_path, site="lyon", gateway="gw-1")


def test_the_keeper_takes_a_well_signed_newer_snapshot_and_keeps_it_across_restarts(tmp_path: Path) -> None:
    first = keeper(tmp_path)
    assert first.load(NOW) is None
    assert first.offer(signed(snapshot(version=3)), NOW).version == 3
    again = keeper(tmp_path)
    loaded = again.load(NOW)
    assert loaded is not None
    assert loaded.version == 3


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (signed(snapshot(version=5), Ed25519PrivateKey.generate()), "bad signature"),
        (signed(snapshot(version=5), key_id="other"), "does not know"),
        (signed(snapshot(version=2)), "not newer"),
        (signed(snapshot(version=5, gateway="gw-2")), "not for"),
        (signed(snapshot(version=5, site="paris")), "not for"),
        (signed(snapshot(version=5, expires_at_ms=NOW - 1)), "expired"),
        (b"{not json", "invalid"),
        (b'{"key_id": "site-1", "snapshot": "{}", "signature": "!!"}', "base64"),
    ],
)
def test_the_keeper_refuses_what_it_must_not_trust(tmp_path: Path, payload: bytes, why: str) -> None:
    held = keeper(tmp_path)
    held.offer(signed(snapshot(version=3)), NOW)
    with pytest.raises(ValueError, match=why):
        held.offer(payload, NOW)
    assert held.current is not None
    assert held.current.version == 3
    saved = keeper(tmp_path).load(NOW)  # the file still holds version 3
    assert saved is not None
    assert saved.version == 3


def test_a_tampered_snapshot_fails_verification(tmp_path: Path) -> None:
    good = sign(snapshot(), KEY, "site-1")
    forged = msgspec.structs.replace(good, snapshot=good.snapshot.replace('"Camille"', '"Mallory"'))
    with pytest.raises(BadAllowlist, match="bad signature"):
        keeper(tmp_path).offer(encode(forged), NOW)


def test_a_corrupt_saved_snapshot_is_ignored(tmp_path: Path) -> None:
    (tmp_path / AllowlistKeeper.FILE_NAME).write_bytes(b"\x00garbage")
    assert keeper(tmp_path).load(NOW) is None


def test_without_keys_nothing_is_trusted(tmp_path: Path) -> None:
    held = keeper(tmp_path, {})
    assert not held.enabled
    with pytest.raises(BadAllowlist, match="no allowlist key"):
        held.offer(signed(snapshot()), NOW)


def test_a_bad_key_in_the_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadConfig, match="allowlist key 'site-1'"):
        gateway_config("mqtt://127.0.0.1:1883", "lyon", tmp_path, allowlist_keys={"site-1": "c2hvcnQ"})


def test_the_server_watch_stops_asking_after_a_missed_deadline_and_asks_again_when_heard() -> None:
    watch = ServerWatch()
    watch.asked("r-1", 10.0)
    watch.check(9.9)
    assert watch.answering
    watch.check(10.0)
    assert not watch.answering
    watch.heard()
    assert watch.answering
    watch.asked("r-2", 20.0)
    watch.heard("r-2")
    watch.check(30.0)
    assert watch.answering


# --- the interlock's offline path ---------------------------------------------------------------


def judged(policy: OfflinePolicy = OfflinePolicy.CACHE, rules: MachineRules = RULES) -> Bench:
    allowlist = snapshot()
    return Bench(rules, offline=lambda asked, now_ms: decide(allowlist, policy, asked, NOW))


def test_without_an_answer_in_time_the_allowlist_decides_and_the_session_says_so() -> None:
    bench = judged()
    bench.badge()
    bench.at(100.4).tick()
    assert bench.machine.asking
    actions = bench.at(100.5).tick()
    assert SwitchOn() in actions
    assert bench.state is MachineStateName.UNLOCKED
    started = only_event(actions)
    assert (started.kind, started.decided_by, started.member_id) == (
        EventKind.SESSION_STARTED,
        DecidedBy.CACHE,
        7,
    )
    # The server's answer, arriving late, changes nothing.
    assert bench.at(100.6).reply(granted=False, reason=Reason.NOT_CERTIFIED) == []
    assert bench.state is MachineStateName.UNLOCKED


def test_a_server_known_to_be_out_of_reach_is_not_waited_for() -> None:
    bench = judged()
    bench.machine.server_reachable = False
    actions = bench.badge()
    assert not any(isinstance(action, SendRequest) for action in actions)
    assert SwitchOn() in actions
    assert only_event(actions).decided_by is DecidedBy.CACHE


def test_an_offline_refusal_keeps_the_machine_off() -> None:
    bench = judged(OfflinePolicy.DENY)
    bench.machine.server_reachable = False
    actions = bench.badge()
    assert SwitchOn() not in actions
    assert bench.state is MachineStateName.LOCKED
    assert events(actions) == []


def test_a_trainer_granted_offline_can_hand_over_to_a_supervised_member() -> None:
    bench = judged()
    bench.machine.server_reachable = False
    bench.badge(TRAINER)
    actions = bench.at(101).badge(SUPERVISED)
    ended, started = events(actions)
    assert (ended.end_reason, started.member_id, started.supervisor_id) == (EndReason.HANDOVER, 11, 3)
    assert started.decided_by is DecidedBy.CACHE


def test_without_a_judge_no_answer_is_still_a_refusal() -> None:
    bench = Bench()
    bench.badge()
    actions = bench.at(100.5).tick()
    assert SwitchOn() not in actions
    assert bench.state is MachineStateName.LOCKED


# --- the hard limit -----------------------------------------------------------------------------


def test_a_deferred_end_waits_for_idleness_without_a_hard_limit() -> None:
    bench = Bench()
    bench.granted()
    bench.current(3.0)
    bench.at(103).current(3.0)
    assert bench.state is MachineStateName.RUNNING
    bench.at(104).lock()
    bench.at(10_000).current(3.0)
    assert bench.state is MachineStateName.RUNNING


def test_the_hard_limit_cuts_power_to_a_machine_that_would_not_stop() -> None:
    rules = dataclasses.replace(RULES, hard_limit_s=30.0)
    bench = Bench(rules)
    bench.granted()
    bench.current(3.0)
    bench.at(103).current(3.0)
    assert bench.lock() == []
    assert bench.at(132.9).current(3.0) == []
    actions = bench.at(133).current(3.0)
    assert SwitchOff() in actions
    ended = only_event(actions)
    assert ended.end_reason == EndReason.HARD_LIMIT
    assert durations(ended) == (33_000, 33_000, 0)
    assert bench.state is MachineStateName.LOCKED


# --- checkpoints and recovery -------------------------------------------------------------------


def started(session: str, running_ms: int = 0) -> SessionEvent:
    return SessionEvent(
        session_id=session, machine="sew-1", kind=EventKind.SESSION_STARTED, at_ms=NOW, member_id=7
    )


def ending(session: str, running_ms: int, at_ms: int = NOW) -> SessionEvent:
    return SessionEvent(
        session_id=session,
        machine="sew-1",
        kind=EventKind.SESSION_ENDED,
        at_ms=at_ms,
        member_id=7,
        unlocked_ms=running_ms + 1000,
        running_ms=running_ms,
        idle_ms=1000,
        end_reason=EndReason.GATEWAY_RESTART,
    )


def test_recovery_ends_open_sessions_at_their_last_checkpoint(tmp_path: Path) -> None:
    with Journal.in_directory(tmp_path) as journal:
        journal.append(started("s1"), ending("s1", 0))
        journal.append(started("s2"), ending("s2", 0))
        journal.checkpoint([ending("s1", 5000, NOW + 6000), ending("s2", 2000, NOW + 6000)])
        journal.append(ending("s2", 3000))  # s2 ends normally
        assert journal.open_sessions() == ["s1"]
    with Journal.in_directory(tmp_path) as journal:
        recovered = journal.recover()
        assert [(e.seq, e.session_id, e.kind, e.running_ms, e.at_ms) for e in recovered] == [
            (4, "s1", EventKind.SESSION_ENDED, 5000, NOW + 6000)
        ]
        assert recovered[0].end_reason == EndReason.GATEWAY_RESTART
        assert journal.open_sessions() == []
        assert journal.recover() == []
        assert [e.seq for e in journal.unacked()] == [1, 2, 3, 4]


def test_the_interlock_checkpoint_is_the_session_closing_now() -> None:
    bench = Bench()
    assert bench.machine.checkpoint(100, wall(100)) is None
    bench.granted()
    bench.current(3.0)
    bench.at(103).current(3.0)
    point = bench.machine.checkpoint(110, wall(110))
    assert point is not None
    assert (point.kind, point.end_reason, durations(point)) == (
        EventKind.SESSION_ENDED,
        EndReason.GATEWAY_RESTART,
        (10_000, 10_000, 0),
    )


def test_a_gateway_that_died_mid_session_closes_it_when_it_starts_again(
    broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock, responder: Responder
) -> None:
    config = gateway_config(broker.url, site_id, tmp_path / "gw", checkpoint_interval_s=1.0)
    crashed = Gateway(config, clock=clock)
    crashed.start()
    assert crashed.wait_connected(10)
    sewing = crashed.machines["sew-1"]
    sewing.tap(MEMBER_BADGE)
    assert crashed.wait_for(lambda: sewing.state is MachineStateName.UNLOCKED, 5)
    settle(crashed, sewing, 2.0, 101.0, clock)
    settle(crashed, sewing, 2.0, 104.0, clock)  # running since 101, checkpointed at least once
    assert crashed.wait_for(lambda: sewing.state is MachineStateName.RUNNING, 5)
    session_id = sewing.session_id
    # A crash: the worker stops mid-session, the journal is left as it is, nothing is ended.
    _crash(crashed)

    again = Gateway(config, clock=clock)
    try:
        assert not again.machines["sew-1"].is_on  # a restart never powers a machine by itself
        again.start()
        assert again.wait_connected(10)
        assert responder.wait_for(
            lambda seen: any(
                e.session_id == session_id and e.kind is EventKind.SESSION_ENDED for e in seen.events
            )
        )
        ended = next(e for e in responder.seen.events if e.kind is EventKind.SESSION_ENDED)
        assert ended.end_reason == EndReason.GATEWAY_RESTART
        assert ended.running_ms == 3000  # from 101 to the last checkpoint, at 104
        assert not again.machines["sew-1"].is_on
    finally:
        again.stop()


def _crash(gateway: Gateway) -> None:
    """Stop a gateway's worker and link without ending anything, as kill -9 would."""
    gateway._inbox.put(inbox.Stop())
    assert gateway._thread is not None
    gateway._thread.join()
    gateway._stopped = True
    gateway.link.drop_connection()
    gateway.link._client.loop_stop()
    gateway.journal.close()
    gateway._release()


# --- a whole gateway, offline ------------------------------------------------------------------


def test_a_gateway_decides_from_a_retained_allowlist_when_the_server_is_silent(
    broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock
) -> None:
    silent = Responder(broker.url, site_id, decide=lambda asked: None, ack_events=False)
    allowlist = msgspec.structs.replace(
        snapshot(site=site_id),
        entries=[
            AllowlistEntry(badge=MEMBER_BADGE, member_id=MEMBER_ID, grants=snapshot().entries[0].grants)
        ],
    )
    silent.send("gw-1", Channel.ALLOWLIST, signed(allowlist), retain=True)  # as the server does
    try:
        config = gateway_config(broker.url, site_id, tmp_path / "gw", allowlist_keys=KEYS)
        with Gateway(config, clock=clock) as gateway:
            assert gateway.wait_connected(10)
            assert gateway.wait_for(lambda: gateway.allowlists.current is not None, 5)
            sewing = gateway.machines["sew-1"]
            sewing.tap(MEMBER_BADGE)
            assert silent.wait_for(lambda seen: len(seen.requests) == 1)
            clock.advance(0.5)
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.UNLOCKED, 5)
            assert sewing.is_on
            assert silent.wait_for(lambda seen: any(e.decided_by is DecidedBy.CACHE for e in seen.events))
            # Now known to be silent: the next tap is decided at once, without asking.
            sewing.tap(MEMBER_BADGE)  # badge out
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.LOCKED, 5)
            sewing.tap(MEMBER_BADGE)
            assert gateway.wait_for(lambda: sewing.state is MachineStateName.UNLOCKED, 5)
            assert len(silent.seen.requests) == 1
            lights = sewing.indicator
            assert isinstance(lights, LedIndicator)
            assert lights.signal is Signal.GRANTED
    finally:
        silent.close()


def test_a_gateway_without_a_broker_decides_from_the_allowlist_it_saved(site_id: str, tmp_path: Path) -> None:
    state = tmp_path / "gw"
    AllowlistKeeper(KEYS, state, site=site_id, gateway="gw-1").offer(signed(snapshot(site=site_id)), NOW)
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    clock = ManualClock(wall_origin_ms=NOW)
    with Gateway(gateway_config(nowhere, site_id, state, allowlist_keys=KEYS), clock=clock) as gateway:
        sewing = gateway.machines["sew-1"]
        sewing.tap(BADGE)
        assert gateway.wait_for(lambda: sewing.state is MachineStateName.UNLOCKED, 5)
        assert sewing.is_on
        assert gateway.journal.unacked()[0].decided_by is DecidedBy.CACHE

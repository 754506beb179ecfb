"""Supervised use and certification at the machine, through a real Mosquitto.

The responder plays the server's rules of supervision and certification
(:class:`tests.controller.responder.TrainingRules`); the gateway is the real
daemon on simulated readers, a simulated button and mock pins, with a manual
clock. Every wait is on a condition.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from controller.clock import ManualClock
from controller.gateway import Gateway
from controller.hardware.gpio import RelaySwitch
from controller.hardware.interfaces import NotSimulated, Signal
from controller.station import MachineStation
from protocol.messages import (
    CertificationLevel,
    CertifyReply,
    EventKind,
    MachineStateName,
    Reason,
    UsageEvent,
)
from protocol.topics import Channel
from tests.controller.responder import (
    MEMBER_BADGE,
    SKILL,
    SUPERVISED_BADGE,
    SUPERVISED_ID,
    TRAINEE_BADGE,
    TRAINEE_ID,
    TRAINER_BADGE,
    TRAINER_ID,
    Responder,
    TrainingRules,
)
from tests.controller.support import gateway_config, round_trip, settle
from tests.services import Mosquitto

LOCKED, UNLOCKED, RUNNING = MachineStateName.LOCKED, MachineStateName.UNLOCKED, MachineStateName.RUNNING


@pytest.fixture
def rules(responder: Responder) -> TrainingRules:
    return responder.play(TrainingRules())


@pytest.fixture
def relay_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every on() and off() of every relay from now on, as (pin, "on" | "off")."""
    calls: list[tuple[str, str]] = []
    on, off = RelaySwitch.on, RelaySwitch.off

    def record_on(relay: RelaySwitch) -> None:
        calls.append((str(relay.pin), "on"))
        on(relay)

    def record_off(relay: RelaySwitch) -> None:
        calls.append((str(relay.pin), "off"))
        off(relay)

    monkeypatch.setattr(RelaySwitch, "on", record_on)
    monkeypatch.setattr(RelaySwitch, "off", record_off)
    return calls


@pytest.fixture
def with_button(broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock) -> Iterator[Gateway]:
    """A gateway whose sewing machine has a certification button and certifies at the supervised level."""
    config = gateway_config(
        broker.url,
        site_id,
        tmp_path / "gw",
        sewing={"button": {"type": "simulated"}, "certify_level": "supervised"},
    )
    with Gateway(config, clock=clock) as running:
        assert running.wait_connected(10)
        yield running


def tap_and_wait(gateway: Gateway, station: MachineStation, badge: str, responder: Responder) -> None:
    """Tap ``badge`` and wait until the server has answered it and the gateway has acted on the answer."""
    asked = len(responder.seen.requests)
    station.tap(badge)
    assert responder.wait_for(lambda seen: len(seen.requests) > asked)
    request = responder.seen.requests[asked]
    assert request.badge == badge
    assert gateway.wait_for(lambda: answered(station), 5)


def answered(station: MachineStation) -> bool:
    """No request waits for the server, and the lights show what came of the last one.

    The interlock changes before the gateway carries out what it asked for, so
    waiting on the lights, which change last, sees every effect of the answer.
    """
    machine = station.machine
    return not machine.asking and not machine.certifying and station.shown[0] is not Signal.AUTHORISING


def trainer_in(gateway: Gateway, station: MachineStation, responder: Responder) -> str:
    station.tap(TRAINER_BADGE)
    assert gateway.wait_for(lambda: station.trainer is not None and answered(station), 5)
    assert station.is_on
    assert station.session_id is not None
    return station.session_id


def kinds(events: list[UsageEvent]) -> list[tuple[EventKind, str | None]]:
    return [(e.kind, e.end_reason) for e in events]


# Supervised use.


def test_a_supervised_member_takes_over_from_the_trainer_without_the_power_going_off(
    responder: Responder, rules: TrainingRules, gateway: Gateway, relay_calls: list[tuple[str, str]]
) -> None:
    sewing = gateway.machines["sew-1"]
    trainer_session = trainer_in(gateway, sewing, responder)
    sewing.tap(SUPERVISED_BADGE)

    assert gateway.wait_for(lambda: sewing.session_id not in (None, trainer_session) and answered(sewing), 5)
    assert sewing.state is UNLOCKED
    assert sewing.is_on
    assert relay_calls == [("17", "on")], "switched on once for the trainer, never off"
    assert sewing.supervisor_id == TRAINER_ID
    assert sewing.shown == (Signal.GRANTED, None)
    asked = responder.seen.requests
    assert [(r.badge, r.supervisor_badge) for r in asked] == [
        (TRAINER_BADGE, None),
        (SUPERVISED_BADGE, TRAINER_BADGE),
    ]

    assert responder.wait_for(lambda seen: len(seen.events) == 3)
    started, ended, handed = responder.seen.events
    assert kinds(responder.seen.events) == [
        (EventKind.SESSION_STARTED, None),
        (EventKind.SESSION_ENDED, "handover"),
        (EventKind.SESSION_STARTED, None),
    ]
    assert (started.member_id, ended.session_id) == (TRAINER_ID, started.session_id)
    assert (handed.badge, handed.member_id, handed.supervisor_id) == (
        SUPERVISED_BADGE,
        SUPERVISED_ID,
        TRAINER_ID,
    )
    assert handed.session_id == sewing.session_id
    assert responder.wait_for(
        lambda seen: [s.session_id for s in seen.states if s.machine == "sew-1"][-1] == handed.session_id
    )


def test_a_supervised_member_alone_is_refused_and_told_why(
    responder: Responder, rules: TrainingRules, gateway: Gateway
) -> None:
    sewing = gateway.machines["sew-1"]
    tap_and_wait(gateway, sewing, SUPERVISED_BADGE, responder)

    assert sewing.shown == (Signal.DENIED, Reason.SUPERVISION_REQUIRED)
    assert responder.seen.requests[0].supervisor_badge is None
    assert sewing.state is LOCKED
    assert not sewing.is_on
    assert sewing.trainee is None, "no trainer, so nobody to certify them"
    assert responder.seen.events == []


def test_after_the_window_the_trainers_machine_is_in_use_and_the_member_alone_is_refused(
    broker: Mosquitto, site_id: str, tmp_path: Path, clock: ManualClock, responder: Responder
) -> None:
    responder.play(TrainingRules(window_ms=60_000))
    config = gateway_config(broker.url, site_id, tmp_path, sewing={"supervision_window_s": 60})
    with Gateway(config, clock=clock) as gateway:
        assert gateway.wait_connected(10)
        sewing = gateway.machines["sew-1"]
        trainer_in(gateway, sewing, responder)
        clock.advance(61)
        sewing.tap(SUPERVISED_BADGE)
        assert gateway.wait_for(lambda: sewing.shown == (Signal.DENIED, Reason.MACHINE_IN_USE), 5)
        assert len(responder.seen.requests) == 1, "refused on the gateway: the server is not asked"

        sewing.tap(TRAINER_BADGE)  # the trainer leaves
        assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
        tap_and_wait(gateway, sewing, SUPERVISED_BADGE, responder)
        assert responder.seen.requests[-1].supervisor_badge is None
        assert sewing.shown == (Signal.DENIED, Reason.SUPERVISION_REQUIRED)
        assert not sewing.is_on


def test_the_trainer_leaves_the_machine_to_a_supervised_member(
    responder: Responder, rules: TrainingRules, gateway: Gateway, clock: ManualClock
) -> None:
    sewing = gateway.machines["sew-1"]
    trainer_in(gateway, sewing, responder)
    clock.advance(20)
    sewing.tap(TRAINER_BADGE)
    assert gateway.wait_for(lambda: sewing.state is LOCKED, 5)
    clock.advance(20)
    sewing.tap(SUPERVISED_BADGE)

    assert gateway.wait_for(lambda: sewing.state is UNLOCKED and answered(sewing), 5)
    assert sewing.is_on
    assert responder.seen.requests[-1].supervisor_badge == TRAINER_BADGE
    assert responder.wait_for(lambda seen: len(seen.events) == 3)
    assert kinds(responder.seen.events) == [
        (EventKind.SESSION_STARTED, None),
        (EventKind.SESSION_ENDED, "badge_out"),
        (EventKind.SESSION_STARTED, None),
    ]
    assert responder.seen.events[2].supervisor_id == TRAINER_ID


def test_a_tap_while_the_trainers_machine_runs_is_refused_on_the_gateway(
    responder: Responder, rules: TrainingRules, gateway: Gateway, clock: ManualClock
) -> None:
    sewing = gateway.machines["sew-1"]
    trainer_session = trainer_in(gateway, sewing, responder)
    settle(gateway, sewing, 2.0, 110.0, clock)
    clock.set(111.0)
    assert gateway.wait_for(lambda: sewing.state is RUNNING, 5)
    sewing.tap(SUPERVISED_BADGE)

    assert gateway.wait_for(lambda: sewing.shown == (Signal.DENIED, Reason.MACHINE_IN_USE), 5)
    assert len(responder.seen.requests) == 1
    assert sewing.session_id == trainer_session
    assert sewing.is_on


# Certification at the machine.


def test_a_trainer_certifies_a_refused_member_with_a_confirming_tap(
    responder: Responder, rules: TrainingRules, gateway: Gateway, relay_calls: list[tuple[str, str]]
) -> None:
    sewing = gateway.machines["sew-1"]
    trainer_session = trainer_in(gateway, sewing, responder)
    tap_and_wait(gateway, sewing, TRAINEE_BADGE, responder)

    assert sewing.shown == (Signal.DENIED, Reason.NOT_CERTIFIED)
    assert sewing.session_id == trainer_session, "the trainer's session goes on"
    assert sewing.is_on
    trainee = sewing.trainee
    assert trainee is not None
    assert (trainee.badge, trainee.trainer_badge) == (TRAINEE_BADGE, TRAINER_BADGE)

    sewing.tap(TRAINER_BADGE)  # the confirming tap
    assert responder.wait_for(lambda seen: len(seen.certify_requests) == 1)
    assert gateway.wait_for(lambda: sewing.last_certification is not None and answered(sewing), 5)
    request = responder.seen.certify_requests[0]
    assert (request.trainer_badge, request.member_badge, request.machine, request.level) == (
        TRAINER_BADGE,
        TRAINEE_BADGE,
        "sew-1",
        CertificationLevel.AUTONOMOUS,
    )
    outcome = sewing.last_certification
    assert outcome is not None
    assert (outcome.certified, outcome.reason, outcome.member_id, outcome.skills) == (
        True,
        Reason.GRANTED,
        TRAINEE_ID,
        (SKILL,),
    )
    assert sewing.shown == (Signal.GRANTED, Reason.GRANTED)
    assert sewing.session_id == trainer_session, "certifying is not badging out"
    assert sewing.trainee is None

    sewing.tap(TRAINEE_BADGE)  # now certified: the trainer hands the machine over
    assert gateway.wait_for(lambda: sewing.session_id not in (None, trainer_session) and answered(sewing), 5)
    assert responder.seen.requests[-1].supervisor_badge == TRAINER_BADGE
    assert sewing.is_on
    assert relay_calls == [("17", "on")]


def test_the_button_confirms_the_certification(
    responder: Responder, rules: TrainingRules, with_button: Gateway
) -> None:
    gateway = with_button
    sewing = gateway.machines["sew-1"]
    trainer_in(gateway, sewing, responder)
    tap_and_wait(gateway, sewing, TRAINEE_BADGE, responder)
    assert sewing.trainee is not None
    sewing.press()

    assert responder.wait_for(lambda seen: len(seen.certify_requests) == 1)
    assert responder.seen.certify_requests[0].level is CertificationLevel.SUPERVISED, "the machine's level"
    assert gateway.wait_for(lambda: sewing.last_certification is not None and answered(sewing), 5)
    outcome = sewing.last_certification
    assert outcome is not None
    assert outcome.certified
    assert rules.levels[TRAINEE_BADGE] is CertificationLevel.SUPERVISED

    # Now certified supervised, the member uses the machine while the trainer is there.
    sewing.tap(TRAINEE_BADGE)
    assert gateway.wait_for(lambda: sewing.supervisor_id == TRAINER_ID, 5)


def test_the_button_alone_does_nothing(responder: Responder, with_button: Gateway) -> None:
    sewing = with_button.machines["sew-1"]
    sewing.press()
    sewing.tap(MEMBER_BADGE)  # something that does reach the server, after the press
    assert with_button.wait_for(lambda: sewing.state is UNLOCKED, 5)

    assert responder.seen.certify_requests == []


def test_press_needs_a_simulated_button(gateway: Gateway) -> None:
    with pytest.raises(NotSimulated, match="no simulated button"):
        gateway.machines["sew-1"].press()


def test_a_refused_certification_is_shown_with_its_reason(
    responder: Responder, rules: TrainingRules, gateway: Gateway
) -> None:
    responder.decide_certify = lambda request: CertifyReply(
        request_id=request.request_id,
        machine=request.machine,
        member_badge=request.member_badge,
        certified=False,
        reason=Reason.PREREQUISITE_MISSING,
        message="Suivre d'abord « piqûre droite » / Take 'straight stitch' first",
    )
    sewing = gateway.machines["sew-1"]
    trainer_in(gateway, sewing, responder)
    tap_and_wait(gateway, sewing, TRAINEE_BADGE, responder)
    sewing.tap(TRAINER_BADGE)

    assert gateway.wait_for(lambda: sewing.last_certification is not None and answered(sewing), 5)
    outcome = sewing.last_certification
    assert outcome is not None
    assert (outcome.certified, outcome.reason) == (False, Reason.PREREQUISITE_MISSING)
    assert outcome.message.startswith("Suivre")
    assert sewing.shown == (Signal.DENIED, Reason.PREREQUISITE_MISSING)
    assert sewing.state is UNLOCKED


def test_an_unanswered_certification_is_refused_and_a_late_answer_ignored(
    responder: Responder, rules: TrainingRules, gateway: Gateway, clock: ManualClock
) -> None:
    responder.decide_certify = lambda request: None
    sewing = gateway.machines["sew-1"]
    trainer_in(gateway, sewing, responder)
    tap_and_wait(gateway, sewing, TRAINEE_BADGE, responder)
    sewing.tap(TRAINER_BADGE)
    assert responder.wait_for(lambda seen: len(seen.certify_requests) == 1)
    assert gateway.wait_for(lambda: sewing.certifying and sewing.shown == (Signal.AUTHORISING, None), 5)
    clock.advance(0.5)

    assert gateway.wait_for(lambda: sewing.last_certification is not None and answered(sewing), 5)
    outcome = sewing.last_certification
    assert outcome is not None
    assert (outcome.certified, outcome.reason) == (False, Reason.SERVER_UNREACHABLE)
    assert sewing.shown == (Signal.DENIED, Reason.SERVER_UNREACHABLE)

    late = rules.certify(responder.seen.certify_requests[0])
    assert late is not None
    responder.send(gateway.config.gateway.id, Channel.CERTIFY_REPLY, late)
    round_trip(responder, gateway)
    assert sewing.last_certification == outcome
    assert sewing.shown == (Signal.DENIED, Reason.SERVER_UNREACHABLE)


def test_malformed_and_stray_certify_replies_change_nothing(
    responder: Responder, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    me = gateway.config.gateway.id
    for payload in (b"", b"garbage", b"{}", b'{"request_id": 5}', b"x" * 5000):
        responder.send(me, Channel.CERTIFY_REPLY, payload)
    stray = CertifyReply(
        request_id="nobody-asked",
        machine="sew-1",
        member_badge=TRAINEE_BADGE,
        certified=True,
        reason=Reason.GRANTED,
    )
    responder.send(me, Channel.CERTIFY_REPLY, stray)
    responder.send(me, Channel.CERTIFY_REPLY, msgspec.structs.replace(stray, machine="no-such-machine"))
    round_trip(responder, gateway)

    sewing = gateway.machines["sew-1"]
    assert sewing.last_certification is None
    assert sewing.state is LOCKED
    dropped = [r for r in caplog.records if "dropped a malformed message" in r.getMessage()]
    assert len(dropped) == 5
    assert any("unknown machine 'no-such-machine'" in r.getMessage() for r in caplog.records)

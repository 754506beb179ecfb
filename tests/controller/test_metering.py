"""Calibrated current and metered energy: the pure parts, and the interlock using them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.metering import Calibration, EnergyMeter, Supply
from protocol.messages import EventKind
from tests.controller.interlock import RULES, RUNNING, UNLOCKED, Bench, durations, events, only_event

# 200 V at a power factor of 0.9: 2 A draw 360 W, so an hour of it is 360 Wh.
SUPPLY = Supply(voltage_v=200.0, power_factor=0.9)


@pytest.mark.parametrize(
    ("scale", "offset_a", "raw", "amps"),
    [
        (1.0, 0.0, 1.5, 1.5),
        (2.0, 0.0, 0.75, 1.5),
        (1.0, -0.2, 0.5, 0.3),
        (1.0, -0.2, 0.1, 0.0),  # never negative
        (0.5, 0.1, -4.0, 0.0),
        (1.25, 0.05, 2.0, 2.55),
    ],
)
def test_calibration_is_a_gain_and_an_offset_never_below_zero(
    scale: float, offset_a: float, raw: float, amps: float
) -> None:
    assert Calibration(scale, offset_a).amps(raw) == pytest.approx(amps)


def test_power_is_amps_times_volts_times_power_factor() -> None:
    assert SUPPLY.watts(2.0) == pytest.approx(360.0)
    assert Supply(230.0).watts(1.0) == pytest.approx(230.0)


def test_energy_holds_each_sample_until_the_next_one() -> None:
    meter = EnergyMeter(SUPPLY, started=0.0, amps=0.0)
    meter.sample(2.0, 10.0)  # nothing drawn from 0 to 10
    assert meter.wh(10.0) == 0.0
    assert meter.wh(1810.0) == pytest.approx(180.0), "360 W held for half an hour, before any sample"
    meter.sample(1.0, 3610.0)  # 360 W from 10 to 3610: 360 Wh
    assert meter.wh(3610.0) == pytest.approx(360.0)
    meter.sample(0.0, 7210.0)  # 180 W for the next hour
    assert meter.wh(9999.0) == pytest.approx(540.0)


def test_a_late_or_repeated_sample_adds_nothing() -> None:
    meter = EnergyMeter(SUPPLY, started=100.0, amps=2.0)
    meter.sample(2.0, 136.0)
    meter.sample(2.0, 136.0)
    meter.sample(2.0, 120.0)  # time never goes back here
    assert meter.wh(136.0) == pytest.approx(3.6)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 600.0), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=30,
    )
)
def test_energy_read_between_samples_never_decreases(steps: list[tuple[float, float, float]]) -> None:
    meter = EnergyMeter(SUPPLY, started=0.0, amps=0.0)
    t, last = 0.0, 0.0
    for amps, gap, read_at in steps:
        # Read (as an event would) somewhere before the next sample, then sample.
        reading = meter.wh(t + gap * read_at)
        assert reading >= last
        last = reading
        t += gap
        meter.sample(amps, t)
        assert meter.wh(t) >= last
        last = meter.wh(t)


def test_the_interlock_judges_calibrated_current() -> None:
    # A clamp that reads half the true current, 0.2 A high: thresholds are in true amperes.
    bench = Bench(replace(RULES, calibration=Calibration(scale=2.0, offset_a=-0.4)))
    bench.granted()
    bench.at(110).current(0.65)  # 0.9 A: below running_above_a (1.0)
    assert bench.machine.amps == pytest.approx(0.9)
    assert bench.at(113).current(0.65) == []
    assert bench.state is UNLOCKED

    bench.at(120).current(0.8)  # 1.2 A
    started = only_event(bench.at(122).current(0.8))
    assert (started.kind, bench.state) == (EventKind.RUNNING_STARTED, RUNNING)

    bench.at(130).current(0.1)  # would be -0.2 A: reads 0
    assert bench.machine.amps == 0.0
    stopped = only_event(bench.at(133).current(0.1))
    assert stopped.kind is EventKind.RUNNING_STOPPED
    assert durations(stopped) == (33_000, 10_000, 23_000)


def test_without_a_voltage_there_is_no_energy_and_no_power(bench: Bench) -> None:
    started = only_event(bench.granted())
    bench.at(110).current(2.0)
    ended = events(bench.at(200).current(2.0) + bench.at(201).current(0.0) + bench.at(204).current(0.0))
    assert bench.machine.watts is None
    assert [e.energy_wh for e in [started, *ended]] == [None] * (1 + len(ended))


def test_every_event_of_a_session_carries_the_energy_so_far() -> None:
    bench = Bench(replace(RULES, supply=SUPPLY, idle_timeout_s=600))
    started = only_event(bench.granted())
    assert started.energy_wh == 0.0

    bench.at(110).current(2.0)
    running = only_event(bench.at(112).current(2.0))
    assert running.energy_wh == pytest.approx(0.2), "360 W for the 2 s since the first sample above"
    assert bench.machine.watts == pytest.approx(360.0)

    bench.at(3710).current(0.0)  # 360 W held from 112 to 3710
    stopped = only_event(bench.at(3713).current(0.0))
    assert stopped.energy_wh == pytest.approx(360.0)

    ended = only_event(bench.at(3800).badge())
    assert ended.kind is EventKind.SESSION_ENDED
    assert ended.energy_wh == pytest.approx(360.0), "nothing drawn while idle"


def test_energy_runs_from_the_current_drawn_when_the_session_opens() -> None:
    bench = Bench(replace(RULES, supply=SUPPLY))
    bench.at(90).current(2.0)  # already drawing (a machine left switched on at the wall)
    bench.at(100).granted()
    ended = only_event(bench.at(118).badge())
    assert ended.energy_wh == pytest.approx(1.8), "360 W for 18 s, nothing before the session"


def test_a_new_session_meters_from_zero() -> None:
    bench = Bench(replace(RULES, supply=SUPPLY))
    bench.granted()
    bench.at(110).current(2.0)
    bench.at(111).current(0.0)
    first = only_event(bench.at(120).badge())
    assert first.energy_wh == pytest.approx(0.1)

    second = only_event(bench.at(130).granted())
    assert (second.kind, second.energy_wh) == (EventKind.SESSION_STARTED, 0.0)
    assert second.session_id != first.session_id

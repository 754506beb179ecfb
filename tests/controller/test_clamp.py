"""The SCT-013 clamp on an MCP3008: RMS over whole mains cycles, bias removal, calibration,
through gpiozero's MCP3008 class talking to an emulated chip on mock SPI pins."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from controller.config import parse_config
from controller.hardware.clamp import Mcp3008Clamp, rms_over_cycles
from controller.hardware.factory import build_parts
from controller.hardware.interfaces import BadHardwareConfig, CurrentSensor, HardwareClosed, PartFailed
from controller.station import rules_for
from tests.controller.emulated_adc import EmulatedMcp3008, SteppingClock, clamp_wave
from tests.controller.support import machine_table

# The pure computation.


def sampled(wave: object, step: float, until: float, jitter: float = 0.0) -> tuple[list[float], list[float]]:
    clock = SteppingClock(step, jitter)
    times = [clock() for _ in range(int(until / step) + 2)]
    return times, [wave(t) for t in times]  # type: ignore[operator]


@pytest.mark.parametrize("jitter", [0.0, 0.0002])
def test_a_sine_on_a_bias_gives_its_rms(jitter: float) -> None:
    times, volts = sampled(lambda t: 1.65 + 1.0 * math.sin(2 * math.pi * 50 * t + 0.3), 0.0002, 0.1, jitter)

    assert rms_over_cycles(times, volts, 0.02, 5) == pytest.approx(1 / math.sqrt(2), rel=1e-3)


def test_other_waveforms_give_their_rms() -> None:
    def triangle(t: float) -> float:
        phase = (t * 50) % 1
        return 2.0 + (4 * phase - 1 if phase < 0.5 else 3 - 4 * phase)  # amplitude 1 on a 2 V bias

    times, volts = sampled(triangle, 0.0001, 0.2)
    assert rms_over_cycles(times, volts, 0.02, 10) == pytest.approx(1 / math.sqrt(3), rel=1e-3)

    # A motor's current with a third harmonic: sqrt(0.8² + 0.3²) / sqrt(2).
    times, volts = sampled(
        lambda t: 1.6 + 0.8 * math.sin(2 * math.pi * 50 * t) + 0.3 * math.sin(2 * math.pi * 150 * t),
        0.0001,
        0.1,
    )
    assert rms_over_cycles(times, volts, 0.02, 5) == pytest.approx(
        math.hypot(0.8, 0.3) / math.sqrt(2), rel=1e-3
    )


def test_a_window_of_whole_cycles_is_unbiased_where_a_cut_one_is_not() -> None:
    times, volts = sampled(lambda t: 1.65 + math.sin(2 * math.pi * 50 * t), 0.0001, 0.1)
    whole = rms_over_cycles(times, volts, 0.02, 2)
    cut = rms_over_cycles(times, volts, 0.0275, 1)  # 1.375 cycles, as a fixed 27.5 ms window would be

    assert whole == pytest.approx(1 / math.sqrt(2), rel=1e-3)
    assert abs(cut - 1 / math.sqrt(2)) > 0.005, "about 1 % off"


def test_a_cycle_with_a_hole_is_left_out() -> None:
    times, volts = sampled(lambda t: 1.65 + math.sin(2 * math.pi * 50 * t), 0.0002, 0.2)
    # The process was paused for 15 ms across a peak of the fourth cycle.
    kept = [(t, v) for t, v in zip(times, volts, strict=True) if not 0.063 < t < 0.078]
    holed_times, holed_volts = [t for t, _ in kept], [v for _, v in kept]

    joined = rms_over_cycles(holed_times, holed_volts, 0.02, 10)
    assert abs(joined - 1 / math.sqrt(2)) > 0.02, "a straight line across the hole misses the peak"
    assert rms_over_cycles(holed_times, holed_volts, 0.02, 10, max_hole_s=0.002) == pytest.approx(
        1 / math.sqrt(2), rel=1e-3
    )


def test_a_record_with_holes_everywhere_is_refused() -> None:
    times, volts = sampled(lambda t: 1.65 + math.sin(2 * math.pi * 50 * t), 0.005, 0.2)
    with pytest.raises(ValueError, match="only 0 of 10 cycles were sampled without a hole"):
        rms_over_cycles(times, volts, 0.02, 10, max_hole_s=0.002)


def test_too_short_a_record_is_refused() -> None:
    times, volts = sampled(lambda t: 1.0, 0.001, 0.03)
    with pytest.raises(ValueError, match="less than 5 cycles"):
        rms_over_cycles(times, volts, 0.02, 5)


# The clamp on an emulated MCP3008.


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    own = MockFactory()
    yield own
    own.reset()


def clamp_on(factory: MockFactory, clock: SteppingClock, **options: object) -> Mcp3008Clamp:
    return Mcp3008Clamp(0, pin_factory=factory, clock=clock, background=False, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("amps", [0.0, 0.5, 2.0, 7.5, 20.0])
def test_known_currents_are_measured(factory: MockFactory, amps: float) -> None:
    clock = SteppingClock(0.0004, jitter=0.0001)  # 2 to 2.5 kHz, uneven
    chip = EmulatedMcp3008(factory, clock)
    chip.waves[0] = clamp_wave(amps, bias=1.62)  # a bias a little off Vref/2: measured, not assumed
    clamp = clamp_on(factory, clock)
    sensor: CurrentSensor = clamp

    measured = sensor.amps()

    # One ADC step is 3.3 V / 1024 = 3.2 mV, i.e. 0.097 A with an SCT-013-030.
    assert measured == pytest.approx(amps, abs=0.06 + 0.01 * amps)
    assert chip.conversions >= 10 * 40, "ten cycles, 40 samples or more each"
    clamp.close()
    chip.close()


def test_the_clamp_sees_a_channel_and_its_own_scale(factory: MockFactory) -> None:
    clock = SteppingClock(0.0004)
    chip = EmulatedMcp3008(factory, clock)
    chip.waves[3] = clamp_wave(10.0, amps_per_volt=100 / 1.65, bias=1.65)  # a 100 A clamp scaled to 1.65 V
    clamp = Mcp3008Clamp(3, amps_per_volt=100 / 1.65, pin_factory=factory, clock=clock, background=False)

    assert clamp.amps() == pytest.approx(10.0, abs=0.3)
    clamp.close()
    chip.close()


def wait_for_reading(sensor: CurrentSensor, timeout: float = 10.0) -> float:
    """The first non-zero reading of a clamp measuring in the background."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        amps = sensor.amps()
        if amps:
            return amps
        time.sleep(0.02)
    pytest.fail("no reading")


def real_time_wave(amps_rms: float) -> object:
    wave = clamp_wave(amps_rms)
    return lambda t: wave(time.monotonic())


def test_the_factory_builds_a_clamp_and_the_machine_calibration_applies_on_top(factory: MockFactory) -> None:
    table = machine_table(
        "sew-1",
        17,
        current={
            "type": "mcp3008",
            "channel": 0,
            "scale": 1.05,
            "offset_a": -0.2,
            "cycles": 4,
            "every_s": 0.05,
        },
    )
    config = parse_config({"gateway": {"id": "gw-1", "site": "s"}, "machine": [table]}, environ={}).machine(
        "sew-1"
    )
    clock = SteppingClock(0.0004)
    chip = EmulatedMcp3008(factory, clock)
    chip.waves[0] = clamp_wave(4.0)
    parts = build_parts(config, factory)
    try:
        clamp = parts.current
        assert isinstance(clamp, Mcp3008Clamp)
        assert clamp._sampler is not None, "the factory's clamps measure in the background"
        # Measured here instead, on the test's clock, for an exact figure whatever the host's load.
        clamp._sampler.leave(clamp)
        clamp._sampler, clamp._clock = None, clock
        calibrated = rules_for(config, 500).calibration.amps(clamp.amps())
        assert calibrated == pytest.approx(4.0 * 1.05 - 0.2, abs=0.1)
    finally:
        parts.close()
        chip.close()


def test_it_works_off_a_pi_with_no_global_pin_factory(factory: MockFactory) -> None:
    saved = Device.pin_factory
    Device.pin_factory = None
    try:
        clock = SteppingClock(0.0004)
        chip = EmulatedMcp3008(factory, clock)
        chip.waves[0] = clamp_wave(1.0)
        clamp = clamp_on(factory, clock)
        assert Device.pin_factory is None, "the global factory is put back as it was"
        assert clamp.amps() == pytest.approx(1.0, abs=0.07)
        clamp.close()
        chip.close()
    finally:
        Device.pin_factory = saved


def test_a_background_clamp_reports_its_latest_window_and_a_failure(factory: MockFactory) -> None:
    chip = EmulatedMcp3008(factory, SteppingClock(0))
    chip.waves[0] = real_time_wave(10.0)  # type: ignore[assignment]
    clamp = Mcp3008Clamp(0, pin_factory=factory, every_s=0.05, cycles=4)
    try:
        # Real time on a busy host: the emulated chip converts a little after the sample's
        # timestamp; the exact figures are the deterministic tests' business.
        assert wait_for_reading(clamp) == pytest.approx(10.0, rel=0.25)
        chip.close()  # the chip is gone: MISO stays where it was, a flat 0 V or 3.3 V

        def failed() -> bool:
            try:
                clamp.amps()
            except PartFailed:
                return True
            return False

        deadline = time.monotonic() + 10
        while not failed() and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(PartFailed, match=r"MCP3008 channel 0 sits at (0\.00|3\.30) V, not near 1\.65 V"):
            clamp.amps()
    finally:
        clamp.close()
        chip.close()
    with pytest.raises(HardwareClosed):
        clamp.amps()


def test_a_channel_out_of_range_is_a_configuration_error(factory: MockFactory) -> None:
    with pytest.raises(BadHardwareConfig, match="channels 0 to 7"):
        Mcp3008Clamp(8, pin_factory=factory, background=False)

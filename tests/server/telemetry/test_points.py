"""What a telemetry sample becomes in the store: measurement, tags, numeric fields, time."""

from __future__ import annotations

from protocol.messages import Telemetry
from server.telemetry import FIELDS, MEASUREMENT, TAGS, MachineSample

T0 = 1_767_225_600_000


def test_a_sample_is_a_line_with_its_tags_fields_and_time_in_nanoseconds() -> None:
    telemetry = Telemetry(machine="sewing-1", at_ms=T0, current_a=2.75, running=True)
    sample = MachineSample.of("lyon", "gw-1", telemetry)
    assert sample.line() == (
        f"machine,gateway=gw-1,machine=sewing-1,site=lyon current_a=2.75,running=1i {T0 * 1_000_000}"
    )


def test_current_is_always_a_float_and_running_an_integer() -> None:
    # A store types a field by the first value it sees: 0 must not make current_a an integer.
    telemetry = Telemetry(machine="m1", at_ms=T0, current_a=0, running=False)
    line = MachineSample.of("s", "g", telemetry).line()
    assert " current_a=0.0,running=0i " in line


def test_power_is_written_when_known() -> None:
    sample = MachineSample("s", "g", "m1", T0, 1.5, True, power_w=345.5)
    assert sample.fields() == {"current_a": 1.5, "running": 1, "power_w": 345.5}
    assert "power_w=345.5" in sample.line()


def test_a_newer_telemetry_with_power_is_read_without_change() -> None:
    class TelemetryWithPower(Telemetry, frozen=True, kw_only=True):  # as proposed for the protocol
        power_w: float | None = None

    telemetry = TelemetryWithPower(machine="m1", at_ms=T0, current_a=1.0, running=True, power_w=230)
    assert MachineSample.of("s", "g", telemetry).power_w == 230.0
    assert (
        MachineSample.of("s", "g", Telemetry(machine="m1", at_ms=T0, current_a=1, running=True)).power_w
        is None
    )


def test_tag_values_are_escaped() -> None:
    line = MachineSample("a b", "g,1", "m=1", 1, 1.0, False).line()
    assert line.startswith(r"machine,gateway=g\,1,machine=m\=1,site=a\ b ")


def test_the_names_are_what_the_module_declares() -> None:
    sample = MachineSample("s", "g", "m", T0, 1.0, True, power_w=1.0)
    head, fields, _ = sample.line().split(" ")
    measurement, *tags = head.split(",")
    assert measurement == MEASUREMENT
    assert sorted(tag.split("=")[0] for tag in tags) == sorted(TAGS)
    assert sorted(field.split("=")[0] for field in fields.split(",")) == sorted(FIELDS)

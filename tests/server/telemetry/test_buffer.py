"""The telemetry buffer: bounded, never waits, drops the oldest, counts what it dropped."""

from __future__ import annotations

import pytest

from server.telemetry import MachineSample
from server.telemetry.buffer import SampleBuffer


def sample(n: int) -> MachineSample:
    return MachineSample("s", "g", "m", n, 1.0, True)


def times(samples: list[MachineSample]) -> list[int]:
    return [s.at_ms for s in samples]


def test_when_full_the_oldest_sample_goes() -> None:
    buffer = SampleBuffer(3)
    assert [buffer.put(sample(n)) for n in range(5)] == [1, 2, 3, 3, 3]
    assert buffer.dropped == 2
    assert times(buffer.take(10)) == [2, 3, 4]
    assert len(buffer) == 0


def test_take_gives_the_oldest_first_up_to_the_limit() -> None:
    buffer = SampleBuffer(10)
    for n in range(5):
        buffer.put(sample(n))
    assert times(buffer.take(2)) == [0, 1]
    assert times(buffer.take(10)) == [2, 3, 4]
    assert buffer.take(10) == []


def test_a_batch_given_back_goes_in_front_of_newer_samples() -> None:
    buffer = SampleBuffer(10)
    for n in range(4):
        buffer.put(sample(n))
    batch = buffer.take(3)
    buffer.put(sample(4))
    assert buffer.give_back(batch) == 0
    assert times(buffer.take(10)) == [0, 1, 2, 3, 4]
    assert buffer.dropped == 0


def test_a_batch_given_back_to_a_fuller_buffer_loses_its_oldest() -> None:
    buffer = SampleBuffer(4)
    for n in range(3):
        buffer.put(sample(n))
    batch = buffer.take(3)
    for n in range(3, 5):
        buffer.put(sample(n))
    assert buffer.give_back(batch) == 1  # room for two of the three
    assert times(buffer.take(10)) == [1, 2, 3, 4]
    assert buffer.dropped == 1
    for n in range(5, 9):
        buffer.put(sample(n))
    assert buffer.give_back([sample(0)]) == 1  # no room at all
    assert buffer.dropped == 2


def test_drop_all_and_refusals_are_counted() -> None:
    buffer = SampleBuffer(5)
    for n in range(3):
        buffer.put(sample(n))
    assert buffer.drop_all() == 3
    buffer.count_dropped(7)
    assert (buffer.dropped, len(buffer)) == (10, 0)


def test_a_buffer_holds_at_least_one_sample() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SampleBuffer(0)

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.clock import from_ms, to_ms, utc_now


def test_milliseconds_round_trip_exactly() -> None:
    for ms in (0, 1, 1_772_445_600_123, 4_102_444_800_999):
        assert to_ms(from_ms(ms)) == ms
    assert from_ms(1_000).tzinfo is UTC
    assert to_ms(datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))) == to_ms(
        datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_ms(datetime(2026, 1, 1))


def test_now_is_aware() -> None:
    assert utc_now().tzinfo is UTC

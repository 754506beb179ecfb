"""Time on the server: aware UTC datetimes, and the wire's epoch milliseconds.

Code that needs the time takes a ``now`` argument or a :data:`Clock`, so tests
pass a fixed time instead of patching the system clock.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def from_ms(ms: int) -> datetime:
    """An aware UTC datetime from milliseconds since the Unix epoch."""
    # Integer arithmetic: a float of epoch seconds would blur the milliseconds.
    return EPOCH + timedelta(milliseconds=ms)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place on the wire: give it a time zone")
    return (moment - EPOCH) // timedelta(milliseconds=1)

"""How many wrong passwords a sign-in may follow: per account and per client address.

After ``per_account`` failures for one account, or ``per_client`` from one address, within
``window_s``, sign-in is refused (429, with ``Retry-After``) until the oldest of those
failures is ``window_s`` old, without the password even being checked, so that guessing
goes no faster than that. A success clears the account's count, not the address's.

The counts live in the memory of the server process: several processes (or a restart)
each count on their own, so the effective limit is the limit times the processes. That is
enough to make guessing an argon2id-hashed password of 10 characters hopeless; a site
running many processes can put a limit in its reverse proxy as well.
"""

import threading
import time
from collections import deque
from collections.abc import Callable

Monotonic = Callable[[], float]


class LoginLimiter:
    def __init__(
        self,
        *,
        per_account: int,
        per_client: int,
        window_s: float,
        monotonic: Monotonic = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._limits = {"account": per_account, "client": per_client}
        self._window = window_s
        self._monotonic = monotonic
        self._max_keys = max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, account: str, client: str) -> int | None:
        """Seconds to wait before trying again, or None if a try is allowed now."""
        now = self._monotonic()
        waits = []
        with self._lock:
            for key in (("account", account), ("client", client)):
                failures = self._recent(key, now)
                if failures is not None and len(failures) >= self._limits[key[0]]:
                    waits.append(failures[-self._limits[key[0]]] + self._window - now)
        return max(1, int(max(waits)) + 1) if waits else None

    def failed(self, account: str, client: str) -> None:
        now = self._monotonic()
        with self._lock:
            if len(self._failures) >= self._max_keys:
                self._forget_old(now)
            for key in (("account", account), ("client", client)):
                self._failures.setdefault(key, deque(maxlen=self._limits[key[0]])).append(now)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._failures.pop(("account", account), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def _forget_old(self, now: float) -> None:
        # Someone trying many accounts or addresses: drop what has aged out, then, if it
        # is still full, the oldest half (a forgotten count only ever errs towards allowing).
        for key in list(self._failures):
            self._recent(key, now)
        if len(self._failures) >= self._max_keys:
            oldest = sorted(self._failures, key=lambda key: self._failures[key][-1])
            for key in oldest[: len(oldest) // 2]:
                del self._failures[key]

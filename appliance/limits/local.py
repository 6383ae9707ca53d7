"""The per-process limiter: the Redis scripts' semantics in memory, with bounded memory.

The last resort without Redis (none configured, mode "local", or unreachable, mode
"local-fallback"): the limiter uses it only when the host's shared file
(``appliance.limits.shared``) cannot be used, or when it is given none. Each worker process
then enforces the limits on its own share of the traffic only: N workers admit up to N times
a rate. That is why the backend is reported.

Memory is bounded: at most ``max_keys`` buckets and as many day counters, least recently used
evicted first. A bucket whose TAT has passed is equivalent to a missing one, so evicting idle
buckets changes nothing; only under more than ``max_keys`` active subjects does eviction
forgive an active bucket.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from appliance.limits.gcra import Rate, gcra

ALLOWED = (0, 0, 0)


class LocalLimiter:
    backend = "in-process (each worker enforces the limits on its own traffic)"

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._tats: OrderedDict[str, int] = OrderedDict()
        self._tokens: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tats) + len(self._tokens)

    def check(
        self,
        token_key: str,
        tokens_per_day: int | None,
        buckets: Sequence[tuple[str, Rate]],
        now_us: int,
    ) -> tuple[int, int, int]:
        """The reply of ``CHECK_LUA`` for the same arguments (see ``appliance.limits.gcra``)."""
        with self._lock:
            if tokens_per_day is not None:
                used = self._tokens.get(token_key, 0)
                if used >= tokens_per_day:
                    return (2, 0, used)
            new: list[int] = []
            worst, worst_i = 0, 0
            for i, (key, rate) in enumerate(buckets, start=1):
                tat = self._tats.get(key, 0)
                tat, wait = gcra(tat, now_us, rate)
                if wait > worst:
                    worst, worst_i = wait, i
                new.append(tat)
            if worst_i:
                return (1, worst_i, worst)
            for (key, _), tat in zip(buckets, new, strict=True):
                self._put(self._tats, key, tat)
            return ALLOWED

    def peek(
        self, token_key: str, bucket_keys: Sequence[str], now_us: int
    ) -> tuple[int, list[int]]:
        """(tokens used today, each bucket's TAT; 0 for none), changing nothing."""
        with self._lock:
            return self._tokens.get(token_key, 0), [self._tats.get(k, 0) for k in bucket_keys]

    def charge(self, token_key: str, tokens: int, now_us: int = 0) -> int:
        with self._lock:
            total = self._tokens.get(token_key, 0) + tokens
            self._put(self._tokens, token_key, total)
            return total

    def close(self) -> None:
        """Nothing to release; ``SharedFileLimiter``'s interface."""

    def _put(self, table: OrderedDict[str, int], key: str, value: int) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.max_keys:
            table.popitem(last=False)

"""A per-process cache whose entries live at most ``ttl_s``, loading each key once at a time.

The gateway's hot path caches what the database says about a credential or a model name
for under a second, so that changes (a revoked key, a new alias) reach every worker in
that time. When an entry expires under load, many requests (greenlets) miss it at once;
without care each would run the same query and open its own database connection. Here
the first one loads it and the others wait for that result (single flight): one query
per key per ``ttl_s`` whatever the concurrency. A load that fails is not cached; its
error is raised in every request that waited for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    loaded_at: float


@dataclass
class _Flight(Generic[V]):
    done: threading.Event = field(default_factory=threading.Event)
    value: V | None = None
    error: BaseException | None = None


class TtlCache(Generic[K, V]):
    """Values by key for at most ``ttl_s`` seconds (0 caches nothing but still coalesces)."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError("ttl_s must not be negative")
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._entries: dict[K, _Entry[V]] = {}
        self._flights: dict[K, _Flight[V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached value of ``key``, or ``load()``'s (shared with concurrent callers)."""
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry.loaded_at < self.ttl_s:
            return entry.value
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value  # type: ignore[return-value]
        return self._load(key, load, flight)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def _load(self, key: K, load: Callable[[], V], flight: _Flight[V]) -> V:
        # The age counts from before the query: the value is at least that old.
        started = self.clock()
        try:
            flight.value = value = load()
        except BaseException as exc:
            flight.error = exc
            self._entries.pop(key, None)
            raise
        else:
            if self.ttl_s > 0:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = _Entry(value, started)
            return value
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

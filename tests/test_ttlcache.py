"""The single-flight TTL cache in front of the database on the gateway's hot path."""

from __future__ import annotations

import threading
import time

import pytest

from appliance.ttlcache import TtlCache
from tests import timing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_live_at_most_ttl_counted_from_before_the_load() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(0.5, clock=clock)
    loads = iter(range(10))

    def load() -> int:
        value = next(loads)
        clock.now += 0.1  # the query itself takes time
        return value

    assert cache.get("k", load) == 0
    clock.now += 0.39  # 0.49 s after the load began
    assert cache.get("k", load) == 0
    clock.now += 0.01
    assert cache.get("k", load) == 1


def test_concurrent_misses_share_one_load() -> None:
    cache: TtlCache[str, str] = TtlCache(10)
    calls: list[int] = []
    release = threading.Event()

    def slow_load() -> str:
        calls.append(1)
        release.wait(timing.scaled(5))
        return "value"

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", slow_load)))
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    time.sleep(timing.scaled(0.2))  # every thread is now waiting on the one load
    release.set()
    for thread in threads:
        thread.join(timing.scaled(5))
    assert calls == [1] and results == ["value"] * 20


def test_a_failed_load_is_raised_to_every_waiter_and_not_cached() -> None:
    cache: TtlCache[str, str] = TtlCache(10)
    release = threading.Event()

    def failing() -> str:
        release.wait(timing.scaled(5))
        raise LookupError("gone")

    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            cache.get("k", failing)
        except LookupError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(timing.scaled(0.2))
    release.set()
    for thread in threads:
        thread.join(timing.scaled(5))
    assert len(errors) == 5
    assert cache.get("k", lambda: "back") == "back"


def test_zero_ttl_loads_every_time_and_forget_drops_an_entry() -> None:
    uncached: TtlCache[str, int] = TtlCache(0)
    counter = iter(range(10))
    assert [uncached.get("k", lambda: next(counter)) for _ in range(3)] == [0, 1, 2]
    cache: TtlCache[str, int] = TtlCache(60)
    assert cache.get("k", lambda: 1) == 1
    assert cache.get("k", lambda: 2) == 1
    cache.forget("k")
    assert cache.get("k", lambda: 3) == 3
    with pytest.raises(ValueError, match="negative"):
        TtlCache(-1)

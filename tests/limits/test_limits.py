"""The limiter against the real Redis (this xdist worker's own database, flushed), the host's
shared file, and in process."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from appliance.auth.principal import Principal
from appliance.auth.rbac import RoleLimits
from appliance.errors import InvalidRequest, RateLimited
from appliance.limits import (
    EffectiveLimits,
    Limiter,
    LocalLimiter,
    Rate,
    check_max_context,
    check_max_tokens,
    limits_for,
)
from tests import timing
from tests.conftest import REDIS_URL, free_port, worker_redis_db

DB = worker_redis_db()
DB_URL = f"{REDIS_URL.rstrip('/')}/{DB}"
T0 = 1_700_000_000.25  # 2023-11-14 22:13:20.25 UTC
MIDNIGHT = 1_700_006_400  # 2023-11-15 00:00 UTC


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(DB_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["redis", "shared-file", "local"])
def make_limiter(
    request: pytest.FixtureRequest, redis_db: redis.Redis, clock: Clock, tmp_path: Path
) -> Iterator[Callable[[], Limiter]]:
    """Limiters sharing one backend: the real Redis, one host's file, or none (per process)."""
    made: list[Limiter] = []
    url = DB_URL if request.param == "redis" else None
    shared = tmp_path / "ratelimits.bin" if request.param == "shared-file" else None

    def make() -> Limiter:
        made.append(Limiter(url, clock=clock, shared_file=shared))
        return made[-1]

    yield make
    for limiter in made:
        limiter.close()


def key_principal(key_id: int = 7, roles: tuple[str, ...] = ("developer",)) -> Principal:
    return Principal(
        name="alice", user_id=1, roles=roles, key_id=key_id, key_prefix=f"sk-app-{key_id:08d}"
    )


def admitted(limiter: Limiter, principal: Principal, limits: EffectiveLimits, n: int) -> int:
    ok = 0
    for _ in range(n):
        try:
            limiter.check_request(principal, limits)
            ok += 1
        except RateLimited:
            pass
    return ok


def test_burst_of_the_rate_then_smooth_refill(
    make_limiter: Callable[[], Limiter], clock: Clock
) -> None:
    limiter, alice = make_limiter(), key_principal()
    limits = EffectiveLimits(requests_per_minute=60)
    assert admitted(limiter, alice, limits, 60) == 60
    with pytest.raises(RateLimited) as refused:
        limiter.check_request(alice, limits)
    assert refused.value.retry_after_s == 1
    assert refused.value.status == 429
    assert refused.value.message == (
        "Rate limit of 60 requests per minute exceeded for key sk-app-00000007."
    )
    clock.advance(0.5)
    with pytest.raises(RateLimited):
        limiter.check_request(alice, limits)
    clock.advance(0.5)  # one emission interval after the burst
    limiter.check_request(alice, limits)
    with pytest.raises(RateLimited):
        limiter.check_request(alice, limits)
    clock.advance(60)  # a full minute idle refills the whole burst, no more
    assert admitted(limiter, alice, limits, 70) == 60
    assert limiter.status()["rejections"]["requests_per_minute"] == 13


def test_keys_are_counted_apart(make_limiter: Callable[[], Limiter]) -> None:
    limiter = make_limiter()
    limits = EffectiveLimits(requests_per_minute=3)
    assert admitted(limiter, key_principal(1), limits, 5) == 3
    assert admitted(limiter, key_principal(2), limits, 5) == 3
    keyless = Principal(name="svc", user_id=9, roles=("app",))
    assert admitted(limiter, keyless, limits, 5) == 3
    with pytest.raises(RateLimited, match="exceeded for user svc"):
        limiter.check_request(keyless, limits)


def test_two_workers_share_one_bucket_under_concurrency(
    redis_db: redis.Redis, clock: Clock
) -> None:
    workers = [Limiter(DB_URL, clock=clock) for _ in range(2)]
    alice, limits = key_principal(), EffectiveLimits(requests_per_minute=50)
    assert admitted(workers[0], alice, limits, 20) == 20
    counts: list[int] = []
    barrier = threading.Barrier(8)

    def hammer(limiter: Limiter) -> None:
        barrier.wait()
        counts.append(admitted(limiter, alice, limits, 15))

    threads = [threading.Thread(target=hammer, args=(workers[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timing.scaled(10))
    assert sum(counts) == 30  # 50 in all, whichever worker admitted them
    assert redis_db.exists("rl:req:key:7")
    assert all(w.mode == "redis" and w.status()["fallback_decisions"] == 0 for w in workers)
    for limiter in workers:
        limiter.close()


def test_tokens_per_day_until_utc_midnight(
    make_limiter: Callable[[], Limiter], clock: Clock
) -> None:
    limiter, alice = make_limiter(), key_principal()
    limits = EffectiveLimits(tokens_per_day=100)
    limiter.check_request(alice, limits)
    limiter.charge_tokens(alice, limits, 60)
    limiter.check_request(alice, limits)
    limiter.charge_tokens(alice, limits, 45)  # the request in flight may overshoot the limit
    with pytest.raises(RateLimited) as refused:
        limiter.check_request(alice, limits)
    assert refused.value.retry_after_s == MIDNIGHT - int(T0)  # 6400 s, rounded up
    assert "Token limit of 100 tokens per day exceeded for key sk-app-00000007" in str(
        refused.value
    )
    assert "105 used today" in refused.value.message
    assert limiter.status()["rejections"]["tokens_per_day"] == 1
    clock.now = MIDNIGHT - 0.5
    with pytest.raises(RateLimited) as refused:
        limiter.check_request(alice, limits)
    assert refused.value.retry_after_s == 1
    clock.now = MIDNIGHT  # a new UTC day, a new counter
    limiter.check_request(alice, limits)


def test_token_counter_lives_in_redis_with_an_expiry(redis_db: redis.Redis, clock: Clock) -> None:
    limiter, alice = Limiter(DB_URL, clock=clock), key_principal()
    limits = EffectiveLimits(tokens_per_day=10)
    limiter.charge_tokens(alice, limits, 4)
    limiter.charge_tokens(alice, limits, 5)
    assert redis_db.get("rl:tok:key:7:20231114") == b"9"
    assert 0 < redis_db.ttl("rl:tok:key:7:20231114") <= 2 * 86400
    limiter.check_request(alice, limits)
    limiter.close()


def test_batched_charges_are_summed_per_counter_and_sent_together(
    redis_db: redis.Redis, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = Limiter(DB_URL, clock=clock, charge_interval_s=3600)  # only close() flushes
    # What the limiter sends, per round trip. (Redis's own INFO commandstats counts the
    # whole server's commands, other xdist workers' included.)
    assert limiter._redis is not None
    sent: list[list[str]] = []
    make_pipeline = limiter._redis.pipeline

    def recording_pipeline(*args: object, **kwargs: object) -> redis.client.Pipeline:
        pipe = make_pipeline(*args, **kwargs)  # type: ignore[arg-type]
        execute = pipe.execute

        def recorded(*a: object, **kw: object) -> list[object]:
            sent.append([str(command[0]).upper() for command, _ in pipe.command_stack])
            return execute(*a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(pipe, "execute", recorded)
        return pipe

    monkeypatch.setattr(limiter._redis, "pipeline", recording_pipeline)
    alice, bob, limits = key_principal(7), key_principal(8), EffectiveLimits(tokens_per_day=10)
    for tokens in (4, 5, 6):
        limiter.charge_tokens(alice, limits, tokens)
    limiter.charge_tokens(bob, limits, 1)
    assert redis_db.get("rl:tok:key:7:20231114") is None  # pending in process
    assert sent == []
    limiter.close()
    assert redis_db.get("rl:tok:key:7:20231114") == b"15"
    assert redis_db.get("rl:tok:key:8:20231114") == b"1"
    assert 0 < redis_db.ttl("rl:tok:key:7:20231114") <= 2 * 86400
    assert sent == [["INCRBY", "EXPIRE", "INCRBY", "EXPIRE"]]  # one round trip, summed


def test_batched_charges_reach_redis_within_the_interval(redis_db: redis.Redis) -> None:
    limiter = Limiter(DB_URL, charge_interval_s=0.05)
    alice, limits = key_principal(), EffectiveLimits(tokens_per_day=10)
    limiter.charge_tokens(alice, limits, 11)
    deadline = timing.deadline(5)
    while not limiter_refuses(limiter, alice, limits) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert limiter_refuses(limiter, alice, limits)
    limiter.close()


def limiter_refuses(limiter: Limiter, principal: Principal, limits: EffectiveLimits) -> bool:
    try:
        limiter.check_request(principal, limits)
    except RateLimited:
        return True
    return False


def test_batched_charges_fall_back_to_the_process_when_redis_is_down(clock: Clock) -> None:
    limiter = Limiter(f"redis://127.0.0.1:{free_port()}/{DB}", clock=clock, charge_interval_s=3600)
    alice, limits = key_principal(), EffectiveLimits(tokens_per_day=10)
    limiter.charge_tokens(alice, limits, 11)
    limiter.flush_charges()
    assert limiter.mode == "local-fallback"
    assert limiter_refuses(limiter, alice, limits)
    limiter.close()


def test_key_override_wins_and_none_is_unlimited(make_limiter: Callable[[], Limiter]) -> None:
    limiter, alice = make_limiter(), key_principal()
    role = RoleLimits(requests_per_minute=60, tokens_per_day=1000, max_tokens=256)
    tighter = limits_for(alice, role, 2, None)
    assert (tighter.requests_per_minute, tighter.tokens_per_day, tighter.max_tokens) == (
        2,
        1000,
        256,
    )
    looser = limits_for(alice, role, 600, 10**9)
    assert (looser.requests_per_minute, looser.tokens_per_day) == (600, 10**9)
    assert limits_for(alice, role, None, None).requests_per_minute == 60
    assert admitted(limiter, alice, tighter, 5) == 2
    unlimited = limits_for(alice, RoleLimits(), None, None)
    assert unlimited == EffectiveLimits()
    assert admitted(limiter, alice, unlimited, 500) == 500
    blocked = limits_for(alice, role, 0, None)
    with pytest.raises(RateLimited, match="No requests are allowed for key sk-app-00000008"):
        limiter.check_request(key_principal(8), blocked)


def test_role_aggregate_is_shared_and_all_or_nothing(
    make_limiter: Callable[[], Limiter], clock: Clock
) -> None:
    limiter = make_limiter()
    role = RoleLimits(requests_per_minute=100)
    one, two = key_principal(1, ("app",)), key_principal(2, ("app", "developer"))
    shared = {"app": 4, "developer": None}
    assert [
        b.key for b in limits_for(two, role, None, None, role_aggregate_rpm=shared).role_buckets
    ] == ["rl:req:role:app"]
    limits_one = limits_for(one, role, 2, None, role_aggregate_rpm=shared)
    limits_two = limits_for(two, role, None, None, role_aggregate_rpm=shared)
    assert admitted(limiter, one, limits_one, 3) == 2  # the key's own limit first
    assert admitted(limiter, two, limits_two, 5) == 2  # then the role's shared budget
    with pytest.raises(RateLimited) as refused:
        limiter.check_request(two, limits_two)
    assert refused.value.message == (
        "Rate limit of 4 requests per minute shared by role 'app' exceeded."
    )
    assert refused.value.retry_after_s == 15
    # The refusals charged nothing: after one interval of the role, exactly one more passes.
    clock.advance(15)
    assert admitted(limiter, two, limits_two, 3) == 1


def test_max_tokens_and_context() -> None:
    limits = EffectiveLimits(max_tokens=256, max_context=1000)
    assert check_max_tokens(limits, 100) == 100
    assert check_max_tokens(limits, None) == 256  # capped when the request sets none
    assert check_max_tokens(EffectiveLimits(), None) is None
    with pytest.raises(InvalidRequest) as refused:
        check_max_tokens(limits, 257)
    assert refused.value.param == "max_tokens" and refused.value.status == 400
    assert "max_tokens" in refused.value.message and "256" in refused.value.message
    assert check_max_context(limits, 900, None) == 100
    assert check_max_context(limits, 900, 50) == 50
    with pytest.raises(InvalidRequest) as refused:
        check_max_context(limits, 900, 200)
    assert refused.value.param == "max_tokens"
    with pytest.raises(InvalidRequest) as refused:
        check_max_context(limits, 1000, None)
    assert refused.value.param == "messages"


def test_local_limiter_memory_is_bounded() -> None:
    local = LocalLimiter(max_keys=3)
    rate = Rate.per_minute_of(10)
    for i in range(10):
        assert local.check(f"tok:{i}", None, [(f"req:{i}", rate)], 0) == (0, 0, 0)
        local.charge(f"tok:{i}", 1)
    assert len(local) == 6
    assert local.check("tok:9", None, [("req:9", rate)], 0) == (0, 0, 0)  # still counted


def test_no_redis_configured_is_local_mode(clock: Clock) -> None:
    limiter = Limiter(None, clock=clock)
    assert admitted(limiter, key_principal(), EffectiveLimits(requests_per_minute=5), 9) == 5
    assert limiter.status() == {
        "mode": "local",
        "backend": "in-process (each worker enforces the limits on its own traffic)",
        "fallback_decisions": 0,
        "rejections": {"requests_per_minute": 4, "tokens_per_day": 0},
        "last_error": None,
    }


class Forwarder:
    """A TCP relay from a port of ours to the real Redis: Redis 'comes back' when it starts."""

    def __init__(self, port: int) -> None:
        host, _, target = REDIS_URL.split("://", 1)[1].partition(":")
        self.target = (host, int(target.split("/")[0] or 6379))
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.1)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with src, dst:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=timing.scaled(5))
        self.server.close()


def test_unreachable_redis_falls_back_locally_then_recovers(
    redis_db: redis.Redis, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    limiter = Limiter(f"redis://127.0.0.1:{port}/{DB}", clock=clock, retry_interval_s=5)
    alice, limits = key_principal(), EffectiveLimits(requests_per_minute=5, tokens_per_day=10)
    with caplog.at_level(logging.WARNING, logger="appliance.limits"):
        started = time.monotonic()
        assert admitted(limiter, alice, limits, 8) == 5  # still enforced, per process
        assert time.monotonic() - started < timing.scaled(5)  # no reconnect storm, no backoff
        limiter.charge_tokens(alice, limits, 11)
        with pytest.raises(RateLimited, match="tokens per day"):
            limiter.check_request(alice, limits)
    status = limiter.status()
    assert status["mode"] == "local-fallback"
    assert status["fallback_decisions"] == 9
    assert "ConnectionError" in status["last_error"]
    assert sum("unreachable" in r.message for r in caplog.records) == 1  # once per transition

    forwarder = Forwarder(port)  # Redis answers on that port from now on
    try:
        caplog.clear()
        clock.advance(4)
        assert admitted(limiter, key_principal(8), limits, 1) == 1
        assert limiter.mode == "local-fallback"  # not retried before the interval
        assert not redis_db.exists("rl:req:key:8")
        clock.advance(1)
        limiter.check_request(key_principal(9), limits)
        assert limiter.mode == "redis"
        assert redis_db.exists("rl:req:key:9")
        assert any("answers again" in r.message for r in caplog.records)
        assert limiter.status()["fallback_decisions"] == 10
    finally:
        limiter.close()
        forwarder.stop()


def test_silent_redis_times_out_into_fallback(clock: Clock) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        limiter = Limiter(f"redis://127.0.0.1:{silent.getsockname()[1]}/{DB}", clock=clock)
        started = time.monotonic()
        assert admitted(limiter, key_principal(), EffectiveLimits(requests_per_minute=2), 4) == 2
        assert time.monotonic() - started < timing.scaled(3)
        assert limiter.mode == "local-fallback"
        assert "Timeout" in (limiter.status()["last_error"] or "")
        limiter.close()


@pytest.mark.perf
def test_hot_path_costs_about_one_round_trip(redis_db: redis.Redis) -> None:
    limiter = Limiter(DB_URL)
    alice = key_principal()
    limits = EffectiveLimits(requests_per_minute=10**7, tokens_per_day=10**12)
    client = redis.Redis.from_url(DB_URL)
    operations = {
        "ping": client.ping,
        "check": lambda: limiter.check_request(alice, limits),
        "charge": lambda: limiter.charge_tokens(alice, limits, 10),
    }
    best = dict.fromkeys(operations, float("inf"))
    for _ in range(5):  # interleaved rounds of 400 (2000 calls each), best round kept
        for name, operation in operations.items():
            started = time.perf_counter()
            for _ in range(400):
                operation()
            best[name] = min(best[name], (time.perf_counter() - started) / 400)
    ping, check, charge = best["ping"], best["check"], best["charge"]
    print(
        f"\nPING {ping * 1e6:.0f} µs, check_request {check * 1e6:.0f} µs "
        f"({check / ping:.2f}x), charge_tokens {charge * 1e6:.0f} µs ({charge / ping:.2f}x)"
    )
    assert limiter.mode == "redis"
    assert check < 10 * ping  # generous: one EVALSHA, not several round trips
    client.close()
    limiter.close()

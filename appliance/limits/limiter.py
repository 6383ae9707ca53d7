"""The rate limiter the API app builds once and calls on every request.

With Redis, one EVALSHA per request checks the token counter of the day and every GCRA bucket
and charges the buckets, atomically across all workers and hosts. After the response its tokens
are added to the day counter: at once, or (``charge_interval_s`` > 0, as the API app does) summed
per counter in process and added by one pipelined round trip per interval, so the counters lag
by at most that interval. Without Redis (none configured, or unreachable) the same
decisions are made on this host, and ``mode`` says so:

- ``redis``: limits shared by every worker and host.
- ``local``: no Redis configured; the limits are decided on this host.
- ``local-fallback``: Redis is configured but failed; the limits are decided on this host,
  Redis is retried at most every ``retry_interval_s`` (by one request, the others stay local
  meanwhile), and ``fallback_decisions`` counts the checks decided locally. A warning is
  logged once per transition, and once when Redis is back.

On this host, ``backend`` says where: given a ``shared_file`` (the API app passes
``HOME/run/ratelimits.bin``), the host's workers share one table (``SharedFileLimiter``,
"shared-file (this host only)"), so N gunicorn workers admit a key's rate once, not N times;
other API hosts count apart. Without one, or when it cannot be used (a warning says why),
each process counts on its own (``LocalLimiter``, "in-process ..."): N workers then admit up
to N times a rate.

Timestamps come from the injected clock of each process, so hosts must keep their clocks in
sync (NTP): a host ``d`` seconds ahead sees buckets refill ``d`` seconds early.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from appliance import metrics
from appliance.auth.principal import Principal
from appliance.errors import RateLimited
from appliance.limits.budget import Allowance, Budget, requests_allowance, tokens_allowance
from appliance.limits.gcra import (
    CHECK_LUA,
    TOKEN_COUNTER_TTL_S,
    Rate,
    day_stamp,
    seconds_to_utc_midnight,
    seconds_until,
    utc_day,
)
from appliance.limits.local import LocalLimiter
from appliance.limits.policy import EffectiveLimits
from appliance.limits.shared import SharedFileError, SharedFileLimiter

log = logging.getLogger(__name__)

Mode = Literal["redis", "local", "local-fallback"]
REDIS_BACKEND = "redis"


class LimitReached(RateLimited):
    """A refused request (429), with what the caller has left (its x-ratelimit-* headers)."""

    def __init__(self, message: str, *, retry_after_s: int, budget: Budget) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.budget = budget


def subject_of(principal: Principal) -> tuple[str, str]:
    """(counter key suffix, words for messages): per API key, or per user without one."""
    if principal.key_id is not None:
        return f"key:{principal.key_id}", f"key {principal.key_prefix or principal.key_id}"
    return f"user:{principal.user_id}", f"user {principal.name}"


def host_limiter(shared_file: Path | None, max_keys: int) -> SharedFileLimiter | LocalLimiter:
    """The host's shared table when it can be used, else this process's own."""
    if shared_file is not None:
        try:
            return SharedFileLimiter(shared_file)
        except (OSError, SharedFileError) as exc:
            log.warning(
                "Cannot share rate limits through %s (%s): without Redis, each worker "
                "enforces the limits on its own traffic.",
                shared_file,
                exc,
            )
    return LocalLimiter(max_keys)


class Limiter:
    def __init__(
        self,
        redis_url: str | None,
        *,
        clock: Callable[[], float] = time.time,
        retry_interval_s: float = 5.0,
        socket_timeout_s: float = 0.25,
        max_connections: int = 64,
        max_local_keys: int = 100_000,
        charge_interval_s: float = 0.0,
        shared_file: Path | None = None,
    ) -> None:
        self._clock = clock
        self.charge_interval_s = charge_interval_s
        self._pending: dict[str, int] = {}  # token counter -> tokens not yet sent to Redis
        self._flusher: threading.Thread | None = None
        self._flusher_pid = 0
        self._stop = threading.Event()
        self.retry_interval_s = retry_interval_s
        self._local = host_limiter(shared_file, max_local_keys)
        self._lock = threading.Lock()
        self._mode: Mode = "local"
        self._retry_at = 0.0
        self.fallback_decisions = 0
        self.rejections = {"requests_per_minute": 0, "tokens_per_day": 0}
        self.last_error: str | None = None
        self._day = (-1, "")
        self._redis: redis.Redis | None = None
        if redis_url is not None:
            # Lazy: nothing connects before the first request. No retries inside redis-py: a
            # failure goes straight to the local fallback instead of stalling the request.
            pool = redis.BlockingConnectionPool.from_url(
                redis_url,
                max_connections=max_connections,
                timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
                socket_timeout=socket_timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            self._redis = redis.Redis(connection_pool=pool)
            self._check = self._redis.register_script(CHECK_LUA)
            self._mode = "redis"
            metrics.set_limiter_mode(self._mode)

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def backend(self) -> str:
        """Where the limits are counted now: in Redis, or how this host counts them."""
        return REDIS_BACKEND if self._mode == "redis" else self._local.backend

    def status(self) -> dict[str, Any]:
        """For /readyz and the metrics; no I/O."""
        return {
            "mode": self._mode,
            "backend": self.backend,
            "fallback_decisions": self.fallback_decisions,
            "rejections": dict(self.rejections),
            "last_error": self.last_error,
        }

    def close(self) -> None:
        """Send the pending charges, stop the flusher, release the connections."""
        self._stop.set()
        flusher = self._flusher
        if flusher is not None and flusher.is_alive() and flusher is not threading.current_thread():
            flusher.join(5)
        self.flush_charges()
        if self._redis is not None:
            self._redis.close()
            self._redis.connection_pool.disconnect()
        self._local.close()

    def check_request(self, principal: Principal, limits: EffectiveLimits) -> Budget:
        """Admit one request, or raise ``LimitReached`` naming the limit and when to retry;
        either way, with what the caller has left after the decision."""
        rpm, tpd = limits.requests_per_minute, limits.tokens_per_day
        if rpm is None and tpd is None and not limits.role_buckets:
            return Budget()
        subject, who = subject_of(principal)
        now = self._clock()
        if rpm == 0:
            self._refused("requests_per_minute")
            raise LimitReached(
                f"No requests are allowed for {who}.",
                retry_after_s=60,
                budget=self._peek(subject, limits, now),
            )
        buckets = self._buckets(subject, limits)
        token_key = self._token_key(subject, now)
        now_us = int(now * 1_000_000)
        reply = None
        if self._use_redis(now):
            args: list[int] = [now_us, -1 if tpd is None else tpd]
            for _, rate in buckets:
                args += (rate.interval_us, rate.window_us)
            try:
                reply = self._check(keys=[token_key, *(k for k, _ in buckets)], args=args)
            except redis.RedisError as exc:
                self._failed(exc)
            else:
                self._succeeded()
        if reply is None:
            reply = self._local.check(token_key, tpd, buckets, now_us)
            self._count_fallback()
            state = self._local.peek(token_key, [k for k, _ in buckets], now_us)
        else:
            state = (int(reply[3]), [int(x) for x in reply[4:]])
        code, index, value = (int(x) for x in reply[:3])
        budget = _budget(limits, buckets, *state, now)
        if code == 0:
            return budget
        if code == 2:
            self._refused("tokens_per_day")
            raise LimitReached(
                f"Token limit of {tpd} tokens per day exceeded for {who} ({value} used today, "
                "the count restarts at 00:00 UTC).",
                retry_after_s=seconds_to_utc_midnight(now),
                budget=budget,
            )
        self._refused("requests_per_minute")
        if rpm is not None and index == 1:
            message = f"Rate limit of {rpm} requests per minute exceeded for {who}."
        else:
            bucket = limits.role_buckets[index - (2 if rpm is not None else 1)]
            message = (
                f"Rate limit of {bucket.rate.per_minute} requests per minute shared by role "
                f"'{bucket.role}' exceeded."
            )
        raise LimitReached(message, retry_after_s=seconds_until(value), budget=budget)

    def budget(self, principal: Principal, limits: EffectiveLimits) -> Budget:
        """What the caller has left, charging nothing (for a response no check was made for)."""
        rpm, tpd = limits.requests_per_minute, limits.tokens_per_day
        if rpm is None and tpd is None and not limits.role_buckets:
            return Budget()
        return self._peek(subject_of(principal)[0], limits, self._clock())

    def charge_tokens(self, principal: Principal, limits: EffectiveLimits, tokens: int) -> None:
        """Add a finished request's prompt + completion tokens to its day counter."""
        if limits.tokens_per_day is None or tokens <= 0:
            return
        token_key = self._token_key(subject_of(principal)[0], self._clock())
        with self._lock:
            self._pending[token_key] = self._pending.get(token_key, 0) + tokens
        if self.charge_interval_s > 0 and self._redis is not None and not self._stop.is_set():
            self._ensure_flusher()
        else:
            self.flush_charges()

    def flush_charges(self) -> None:
        """Add the pending charges to their counters: Redis in one round trip, else locally."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        now = self._clock()
        if self._use_redis(now):
            assert self._redis is not None
            try:
                pipe = self._redis.pipeline(transaction=False)
                for token_key, tokens in pending.items():
                    pipe.incrby(token_key, tokens)
                    pipe.expire(token_key, TOKEN_COUNTER_TTL_S)
                pipe.execute()
            except redis.RedisError as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return
        now_us = int(now * 1_000_000)
        for token_key, tokens in pending.items():
            self._local.charge(token_key, tokens, now_us)

    # -- internals -------------------------------------------------------------------------

    def _buckets(self, subject: str, limits: EffectiveLimits) -> list[tuple[str, Rate]]:
        buckets: list[tuple[str, Rate]] = []
        if limits.requests_per_minute:
            buckets.append((f"rl:req:{subject}", Rate.per_minute_of(limits.requests_per_minute)))
        buckets.extend((b.key, b.rate) for b in limits.role_buckets)
        return buckets

    def _peek(self, subject: str, limits: EffectiveLimits, now: float) -> Budget:
        buckets = self._buckets(subject, limits)
        token_key = self._token_key(subject, now)
        keys = [k for k, _ in buckets]
        now_us = int(now * 1_000_000)
        state = None
        if self._use_redis(now):
            assert self._redis is not None
            try:
                values = self._redis.mget([token_key, *keys])
            except redis.RedisError as exc:
                self._failed(exc)
            else:
                self._succeeded()
                state = (int(values[0] or 0), [int(v or 0) for v in values[1:]])
        if state is None:
            state = self._local.peek(token_key, keys, now_us)
        return _budget(limits, buckets, *state, now)

    def _token_key(self, subject: str, now: float) -> str:
        day = utc_day(now)
        cached_day, stamp = self._day
        if day != cached_day:
            stamp = day_stamp(day)
            self._day = (day, stamp)
        return f"rl:tok:{subject}:{stamp}"

    def _ensure_flusher(self) -> None:
        # Started in the process that charges (a forked worker has no thread of its parent).
        if self._flusher is not None and self._flusher_pid == os.getpid():
            return
        with self._lock:
            if self._flusher is not None and self._flusher_pid == os.getpid():
                return
            self._flusher_pid = os.getpid()
            self._flusher = threading.Thread(
                target=self._flush_every_interval, name="token-charges", daemon=True
            )
            self._flusher.start()

    def _flush_every_interval(self) -> None:
        while not self._stop.wait(self.charge_interval_s):
            try:
                self.flush_charges()
            except Exception:  # never let the flusher die; the next round tries again
                log.exception("could not add token charges to their counters")

    def _use_redis(self, now: float) -> bool:
        """In fallback, let one caller per retry interval try Redis again; the rest stay local."""
        if self._mode == "redis":
            return True
        if self._redis is None or now < self._retry_at:
            return False
        with self._lock:
            if now < self._retry_at:
                return False
            self._retry_at = now + self.retry_interval_s
        return True

    def _failed(self, exc: redis.RedisError) -> None:
        with self._lock:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._retry_at = self._clock() + self.retry_interval_s
            if self._mode == "local-fallback":
                return
            self._mode = "local-fallback"
            metrics.set_limiter_mode(self._mode)
        log.warning(
            "Redis unreachable for rate limits (%s); enforcing limits on this host (%s) "
            "until it answers again (retried every %.0f s).",
            self.last_error,
            self._local.backend,
            self.retry_interval_s,
        )

    def _succeeded(self) -> None:
        if self._mode == "redis":
            return
        with self._lock:
            if self._mode == "redis":
                return
            self._mode = "redis"
            metrics.set_limiter_mode(self._mode)
            self.last_error = None
        log.warning("Redis answers again: rate limits are shared across workers.")

    def _count_fallback(self) -> None:
        if self._mode == "local-fallback":
            with self._lock:
                self.fallback_decisions += 1

    def _refused(self, limit: str) -> None:
        metrics.count_rejection(limit)
        with self._lock:
            self.rejections[limit] += 1


def _budget(
    limits: EffectiveLimits,
    buckets: list[tuple[str, Rate]],
    used: int,
    tats_us: list[int],
    now: float,
) -> Budget:
    """What ``limits`` leave, from the state of their counters: ``used`` tokens today and
    the TAT of each of ``buckets``. A key allowed no request has nothing left for a minute
    (its Retry-After)."""
    now_us = int(now * 1_000_000)
    tpd = limits.tokens_per_day
    requests = (
        Allowance(0, 0, 60.0)
        if limits.requests_per_minute == 0
        else requests_allowance([rate for _, rate in buckets], tats_us, now_us)
    )
    return Budget(requests, tokens_allowance(tpd, used, now) if tpd is not None else None)

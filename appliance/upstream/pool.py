"""Choosing a replica for each request, and keeping failing replicas out for a while.

One ``ReplicaPool`` per process holds, per upstream URL, the number of requests in
flight and a circuit breaker:

- **admitted**: the replica takes traffic; ``failure_threshold`` consecutive failures
  (connect errors, timeouts, 5xx) eject it;
- **ejected**: no traffic for ``cooldown_s`` (unless every replica of a route is
  ejected: then they are tried anyway rather than failing the request outright);
- **half-open**: after the cooldown, one trial request (or a passing health probe)
  re-admits it on success; a failure ejects it for another cooldown.

Each request takes a ``Lease`` on the replica it is sent to and releases it exactly
once with its outcome; releasing again is a no-op, so the in-flight counter can never
drift whatever path the request takes.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

ADMITTED, EJECTED, HALF_OPEN = "admitted", "ejected", "half-open"


class Outcome(enum.Enum):
    SUCCESS = "success"  # the replica answered (a 4xx about the request counts too)
    FAILURE = "failure"  # connect error, timeout, 5xx or a broken stream
    NEUTRAL = "neutral"  # says nothing about the replica (the client went away)


@dataclass
class _Replica:
    url: str
    last_used: float
    outstanding: int = 0
    failures: int = 0  # consecutive
    ejected_until: float | None = None  # None: admitted
    trial: bool = False  # a half-open trial request is in flight
    probe_ok: bool | None = None  # the last active health check; None: not probed yet
    requests: int = 0
    errors: int = 0


@dataclass(frozen=True)
class ReplicaStatus:
    """A read-only view of one replica, for metrics, readiness and tests."""

    url: str
    state: str
    outstanding: int
    consecutive_failures: int
    requests: int
    errors: int
    probe_ok: bool | None


class Lease:
    """One request's hold on a replica; ``release`` it exactly once (extra calls are no-ops)."""

    __slots__ = ("_pool", "_replica", "readmits", "released", "trial", "url")

    def __init__(
        self, pool: ReplicaPool, replica: _Replica, *, trial: bool, readmits: bool
    ) -> None:
        self._pool = pool
        self._replica = replica
        self.url = replica.url
        self.trial = trial  # the half-open replica's one trial request
        self.readmits = readmits  # sent to a replica that is not admitted: success re-admits
        self.released = False

    def release(self, outcome: Outcome) -> None:
        self._pool._release(self, self._replica, outcome)


class ReplicaPool:
    """Least-outstanding-requests selection with passive ejection; thread- and greenlet-safe."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 10.0,
        forget_after_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if failure_threshold < 1 or cooldown_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s > 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.forget_after_s = forget_after_s
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - load spreading, not security
        # re-entrant: a stream dropped without close() releases its lease from the garbage
        # collector, which may run while this thread is inside acquire()
        self._lock = threading.RLock()
        self._replicas: dict[str, _Replica] = {}

    def acquire(
        self,
        urls: Iterable[str],
        *,
        unhealthy: Collection[str] = (),
        exclude: Collection[str] = (),
    ) -> Lease | None:
        """A lease on the best replica among ``urls`` not in ``exclude``; None if none is left.

        Best means, in this order: not ejected (a half-open replica with no trial in flight
        counts as available, and its request is the trial); not marked unhealthy by the
        database (``unhealthy``) unless this process's own health check has probed it
        since; fewest requests in flight; then at random.
        """
        with self._lock:
            now = self.clock()
            ranked: list[tuple[int, int, _Replica]] = []
            for url in dict.fromkeys(urls):
                if url in exclude:
                    continue
                replica = self._replicas.get(url)
                if replica is None:
                    replica = self._replicas[url] = _Replica(url, last_used=now)
                replica.last_used = now
                rank = self._rank(replica, now)
                if rank == 0 and url in unhealthy and replica.probe_ok is None:
                    rank = 1
                ranked.append((rank, replica.outstanding, replica))
            if not ranked:
                return None
            best = min((rank, outstanding) for rank, outstanding, _ in ranked)
            chosen = self.rng.choice([r for rank, out, r in ranked if (rank, out) == best])
            readmits = chosen.ejected_until is not None
            trial = readmits and not chosen.trial and now >= (chosen.ejected_until or now)
            chosen.trial = chosen.trial or trial
            chosen.outstanding += 1
            chosen.requests += 1
            return Lease(self, chosen, trial=trial, readmits=readmits)

    def _rank(self, replica: _Replica, now: float) -> int:
        if replica.ejected_until is None:
            return 0
        if now >= replica.ejected_until and not replica.trial:
            return 0  # half-open: this request will be the trial
        return 2  # ejected: only when nothing else is left

    def _release(self, lease: Lease, replica: _Replica, outcome: Outcome) -> None:
        with self._lock:
            if lease.released:
                return
            lease.released = True
            replica.outstanding -= 1
            if lease.trial:
                replica.trial = False
            if outcome is Outcome.SUCCESS:
                replica.failures = 0
                if lease.readmits:  # a trial (or a last-resort request) succeeded
                    replica.ejected_until = None
            elif outcome is Outcome.FAILURE:
                replica.errors += 1
                self._failed(replica, self.clock())

    def _failed(self, replica: _Replica, now: float) -> None:
        replica.failures += 1
        if replica.ejected_until is not None:
            if now >= replica.ejected_until:  # half-open and failed again
                replica.ejected_until = now + self.cooldown_s
        elif replica.failures >= self.failure_threshold:
            replica.ejected_until = now + self.cooldown_s

    def record_probe(self, url: str, ok: bool) -> None:
        """Feed an active health check into the breaker.

        A failed probe counts like a failed request; a passing probe re-admits a replica
        whose cooldown is over (it does not cut an ejection short).
        """
        with self._lock:
            replica = self._replicas.get(url)
            if replica is None:
                return
            now = self.clock()
            replica.probe_ok = ok
            if not ok:
                self._failed(replica, now)
            elif replica.ejected_until is not None and now >= replica.ejected_until:
                replica.ejected_until = None
                replica.failures = 0

    def urls(self) -> list[str]:
        """The replicas routed to recently (the ones worth probing); older ones are forgotten."""
        with self._lock:
            now = self.clock()
            for url, replica in list(self._replicas.items()):
                idle = now - replica.last_used > self.forget_after_s
                if idle and replica.outstanding == 0:
                    del self._replicas[url]
            return list(self._replicas)

    def status(self) -> dict[str, ReplicaStatus]:
        with self._lock:
            now = self.clock()
            return {url: self._status(replica, now) for url, replica in self._replicas.items()}

    def _status(self, replica: _Replica, now: float) -> ReplicaStatus:
        if replica.ejected_until is None:
            state = ADMITTED
        else:
            state = EJECTED if now < replica.ejected_until else HALF_OPEN
        return ReplicaStatus(
            url=replica.url,
            state=state,
            outstanding=replica.outstanding,
            consecutive_failures=replica.failures,
            requests=replica.requests,
            errors=replica.errors,
            probe_ok=replica.probe_ok,
        )

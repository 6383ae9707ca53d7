"""Active health checks of the upstreams.

Two consumers, two loops:

- ``HealthChecker``: a daemon thread in every API worker process that probes the
  replicas this process routes to every few seconds and feeds the results into its
  ``ReplicaPool`` (the same circuit breaker that requests feed);
- ``refresh_upstream_health``: the Celery beat task that stores every upstream's state
  in the database, for readiness, the portal and cold-started workers.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import urllib3
from sqlalchemy import select
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
)

from appliance.db import Database
from appliance.models import Upstream, utcnow
from appliance.upstream.connections import KeepAlivePoolManager, StaleConnection, fresh_connection
from appliance.upstream.pool import ReplicaPool

if TYPE_CHECKING:
    from appliance.upstream.credentials import UpstreamCredentials

log = logging.getLogger(__name__)


def probe(
    http: urllib3.PoolManager,
    url: str,
    timeout_s: float = 2.0,
    headers: dict[str, str] | None = None,
) -> str | None:
    """None if ``url`` answers its health endpoint, else a short reason. ``headers``: the
    upstream's credential (vLLM and the built-in engine leave /health open; sent anyway).

    A kept-alive connection the upstream closed under the probe is no verdict: the probe
    (a GET) is sent again once on a fresh connection."""

    def get() -> urllib3.BaseHTTPResponse:
        return http.request(
            "GET", f"{url}/health", headers=headers, timeout=timeout_s, retries=False
        )

    try:
        try:
            response = get()
        except StaleConnection:
            with fresh_connection():
                response = get()
    except (HTTPError, OSError) as exc:
        return _reason(exc)
    return None if response.status == 200 else f"HTTP {response.status}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NewConnectionError):
        return "ConnectError"
    if isinstance(exc, ConnectTimeoutError):
        return "ConnectTimeout"
    if isinstance(exc, ReadTimeoutError):
        return "ReadTimeout"
    return type(exc).__name__


class HealthChecker:
    """Probes every replica of ``pool`` each ``interval_s`` seconds in a daemon thread.

    ``ensure_started`` is cheap and idempotent: call it on every request. It (re)starts
    the thread in a forked worker process, where a thread started before the fork does
    not exist. ``stop`` ends the thread (tests, shutdown). The thread has connections of
    its own, none kept past ``idle_timeout_s``.
    """

    def __init__(
        self,
        pool: ReplicaPool,
        *,
        interval_s: float = 5.0,
        timeout_s: float = 2.0,
        headers: Callable[[str], dict[str, str]] | None = None,
        idle_timeout_s: float = 1.0,
    ):
        self.pool = pool
        self.idle_timeout_s = idle_timeout_s
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.headers = headers or (lambda url: {})
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def ensure_started(self) -> None:
        if self.running:
            return
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="upstream-health", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout_s)

    def check_once(self, http: urllib3.PoolManager) -> dict[str, str | None]:
        """Probe every replica once; returns {url: None if healthy else the reason}."""
        reasons = {
            url: probe(http, url, self.timeout_s, self.headers(url)) for url in self.pool.urls()
        }
        before = self.pool.status()
        for url, reason in reasons.items():
            self.pool.record_probe(url, reason is None)
            was_ok = before[url].probe_ok if url in before else None
            if reason is not None and was_ok is not False:
                log.warning("upstream %s failed its health check: %s", url, reason)
            elif reason is None and was_ok is False:
                log.info("upstream %s passes its health check again", url)
        return reasons

    def _run(self, stop: threading.Event) -> None:
        with KeepAlivePoolManager(self.idle_timeout_s, maxsize=1) as http:
            while not stop.wait(self.interval_s):
                try:
                    self.check_once(http)
                except Exception:  # never let the checker die; the next round tries again
                    log.exception("upstream health check round failed")


def refresh_upstream_health(
    db: Database, timeout_s: float = 2.0, credentials: UpstreamCredentials | None = None
) -> dict[str, bool]:
    """Probe every upstream once and store the result; returns {url: healthy}."""
    with db.session() as session:
        rows = {u.id: (u.url, u.credential) for u in session.scalars(select(Upstream))}
    urls = {uid: url for uid, (url, _) in rows.items()}

    def headers(url: str, sealed: str | None) -> dict[str, str]:
        return credentials.headers(url, sealed) if credentials is not None else {}

    with urllib3.PoolManager() as http:
        reasons = {
            uid: probe(http, url, timeout_s, headers(url, sealed))
            for uid, (url, sealed) in rows.items()
        }
    now = utcnow()
    with db.session() as session:
        for upstream in session.scalars(select(Upstream).where(Upstream.id.in_(reasons))):
            reason = reasons[upstream.id]
            upstream.healthy = reason is None
            upstream.last_error = reason
            upstream.last_checked_at = now
    return {urls[uid]: reason is None for uid, reason in reasons.items()}

"""Forwarding requests to a model's replicas over pooled keep-alive connections.

Each request goes to the replica with the fewest requests in flight (see ``pool``).
It is retried on another replica, up to ``max_attempts`` in all, only while nothing
has reached the client: connect errors and timeouts, a connection dropped before the
answer, a 5xx. A read timeout is not retried (the replica was working on it), and once
a stream has started it is never retried: its failure reaches the client in-band.

A kept-alive connection is not reused once idle for ``idle_timeout_s`` (below the
upstreams' keep-alive, see ``connections``), and one that the upstream closed anyway
gets the request sent again once, on a fresh connection to the same replica, before any
other replica is tried: when it broke before the request was written, or, for an
idempotent request (``GET``, ``/tokenize``), before any byte of the answer; any other
request that was written is not sent to the same replica again. Health probes have
connections of their own. Each request carries the caller's ``X-Request-Id``.

Every request carries the upstream's credential (``credentials``: the engine key, or the
upstream's own key). An upstream that answers 401 refused that credential, not the
caller: the engine key it replaced is tried once while it is still accepted (a server not
yet restarted after ``appliance engine rotate-key``), then the replica counts as failed and
the caller gets a 502, never the upstream's 401.
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from appliance import metrics
from appliance.errors import ApplianceError, UpstreamError, UpstreamRejected, UpstreamUnavailable
from appliance.upstream.cards import ModelCards
from appliance.upstream.connections import (
    KeepAlivePoolManager,
    StaleConnection,
    fresh_connection,
)
from appliance.upstream.credentials import UpstreamCredentials, no_credentials
from appliance.upstream.health import HealthChecker, probe
from appliance.upstream.pool import Lease, Outcome, ReplicaPool, ReplicaStatus
from appliance.upstream.routes import Route
from appliance.vault.engine_key import EngineKeys

if TYPE_CHECKING:
    from appliance.config import Settings

__all__ = ["UpstreamClient", "UpstreamStream", "probe"]

log = logging.getLogger(__name__)

# Nothing has reached the upstream's answer yet: safe to send the request elsewhere.
# (ProtocolError: the connection broke before a status line, e.g. a stale keep-alive.)
RETRYABLE = (NewConnectionError, ConnectTimeoutError, ProtocolError)
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
ACCEPT_JSON = {"Accept": "application/json"}
KEEPALIVE_PER_REPLICA = 256
# POST paths with no effect but their answer: sent again after a connection that closed
# without answering (GET always is).
IDEMPOTENT_POSTS = frozenset({"/tokenize", "/detokenize"})


class UpstreamStream:
    """An open streaming response; iterate its lines, and close it to cancel the upstream.

    A stream read to its end gives its connection back to the pool; one closed before
    its end (the client went away) drops the connection, which cancels the generation.
    Closing releases the replica's lease; so does garbage collection, as a safety net
    for a stream that is dropped without being closed.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse, lease: Lease) -> None:
        self._response = response
        self._lease = lease
        self._finalizer = weakref.finalize(self, _close, response, lease)

    @property
    def url(self) -> str:
        return self._lease.url

    def iter_lines(self) -> Iterator[str]:
        """The response's lines as they arrive (no waiting for a buffer to fill)."""
        pending = b""
        try:
            while chunk := self._response.read1(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.rstrip(b"\r").decode("utf-8", "replace")
        except (HTTPError, OSError) as exc:
            self._lease.release(Outcome.FAILURE)
            self._finalizer()
            raise UpstreamError(f"The upstream stream broke off: {type(exc).__name__}.") from None
        # The replica is done with this request: free it and its connection at once.
        self._lease.release(Outcome.SUCCESS)
        self._response.release_conn()
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", "replace")

    def close(self) -> None:
        self._lease.release(Outcome.SUCCESS)  # it answered 2xx; a broken stream is already out
        self._finalizer()


def _close(response: urllib3.BaseHTTPResponse, lease: Lease) -> None:
    lease.release(Outcome.NEUTRAL)
    response.close()  # a no-op once released; otherwise it drops the connection


class UpstreamClient:
    """The one object per process that talks to upstreams: connections, pool, health checks."""

    def __init__(
        self,
        connect_timeout_s: float,
        read_timeout_s: float,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 10.0,
        max_attempts: int = 3,
        health_interval_s: float = 5.0,
        health_timeout_s: float = 2.0,
        idle_timeout_s: float = 1.0,
        pool: ReplicaPool | None = None,
        credentials: UpstreamCredentials | None = None,
    ) -> None:
        # urllib3 rather than httpx here: on this path it costs half the CPU per request
        # (measured under gevent: 250 vs 540 microseconds for a small completion).
        self.http = KeepAlivePoolManager(
            idle_timeout_s,
            maxsize=KEEPALIVE_PER_REPLICA,
            block=False,  # beyond the kept connections, open more rather than wait
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
        )
        # /readyz's probes: never a connection of the requests (nor the health thread's)
        self._probe_http = KeepAlivePoolManager(idle_timeout_s, maxsize=2, block=False)
        self._targets: dict[str, tuple[urllib3.HTTPConnectionPool, str]] = {}
        self.pool = pool or ReplicaPool(failure_threshold=failure_threshold, cooldown_s=cooldown_s)
        self.max_attempts = max(1, max_attempts)
        self.credentials = credentials or no_credentials()
        self._sealed: dict[str, str] = {}  # url -> its own sealed key, as routes last said
        self.health = HealthChecker(
            self.pool,
            interval_s=health_interval_s,
            timeout_s=health_timeout_s,
            headers=self.probe_headers,
            idle_timeout_s=idle_timeout_s,
        )
        # what each model's upstream lists about it (max_model_len, root, parent)
        self.cards = ModelCards(
            lambda route: self.get_json(route, "/v1/models", timeout_s=health_timeout_s)
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> UpstreamClient:
        """A client of ``settings``; without ``credentials`` it sends the engine key (and
        cannot open upstreams' own keys: ``UpstreamCredentials.of`` can)."""
        options: dict[str, Any] = {
            "failure_threshold": settings.upstream_failure_threshold,
            "cooldown_s": settings.upstream_cooldown_s,
            "idle_timeout_s": settings.upstream_idle_timeout_s,
            "credentials": UpstreamCredentials(
                functools.partial(EngineKeys.from_settings, settings)
            ),
            **overrides,
        }
        return cls(settings.upstream_connect_timeout_s, settings.upstream_read_timeout_s, **options)

    def post_json(
        self,
        route: Route,
        path: str,
        payload: dict[str, Any],
        *,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """POST ``payload`` to ``path`` of a replica of ``route``; its JSON answer."""
        response, lease = self._send(route, "POST", path, payload, request_id=request_id)
        return _json_of(response, lease)

    def post_body(
        self,
        route: Route,
        path: str,
        body: bytes,
        content_type: str,
        *,
        request_id: str | None = None,
    ) -> tuple[str, bytes]:
        """POST a body already encoded (a multipart form); the answer's type and bytes."""
        response, lease = self._send(
            route, "POST", path, None, raw=(body, content_type), request_id=request_id
        )
        try:
            data = response.data
        except (HTTPError, OSError):
            lease.release(Outcome.FAILURE)
            raise UpstreamError("The upstream's answer broke off.") from None
        lease.release(Outcome.SUCCESS)
        return response.headers.get("Content-Type", "application/octet-stream"), data

    def open_body_stream(
        self,
        route: Route,
        path: str,
        body: bytes,
        content_type: str,
        *,
        request_id: str | None = None,
    ) -> UpstreamStream:
        """``post_body`` whose answer is a stream of server-sent events."""
        response, lease = self._send(
            route, "POST", path, None, raw=(body, content_type), stream=True, request_id=request_id
        )
        return UpstreamStream(response, lease)

    def get_json(
        self,
        route: Route,
        path: str,
        *,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """GET ``path`` of a replica of ``route`` (``/v1/models``); its JSON answer."""
        response, lease = self._send(
            route, "GET", path, None, request_id=request_id, timeout_s=timeout_s
        )
        return _json_of(response, lease)

    def count_tokens(
        self, route: Route, prompt: dict[str, Any], *, request_id: str | None = None
    ) -> int:
        """The prompt's token count, from a replica's ``/tokenize`` (vLLM's, or the engine's).

        ``prompt`` is ``{"messages": ...}`` (the chat template applied) or ``{"prompt": str}``.
        """
        try:
            result = self.post_json(
                route,
                "/tokenize",
                {**prompt, "model": route.served_name},
                request_id=request_id,
            )
        except UpstreamRejected as exc:
            if exc.status not in (404, 405):
                raise
            raise UpstreamUnavailable(
                f"The context limit of this key cannot be enforced: the upstream of "
                f"'{route.model}' does not count tokens (no /tokenize)."
            ) from None
        count = result.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise UpstreamError("The upstream's /tokenize answered without a token count.")
        return count

    def open_stream(
        self,
        route: Route,
        path: str,
        payload: dict[str, Any],
        *,
        request_id: str | None = None,
    ) -> UpstreamStream:
        response, lease = self._send(
            route, "POST", path, payload, stream=True, request_id=request_id
        )
        return UpstreamStream(response, lease)

    def probe_headers(self, url: str) -> dict[str, str]:
        """What a health probe of ``url`` sends: its credential."""
        return self.credentials.headers(url, self._sealed.get(url))

    def probe(self, url: str, sealed: str | None = None, timeout_s: float = 2.0) -> str | None:
        """None if ``url`` answers its health endpoint, else a short reason."""
        return probe(self._probe_http, url, timeout_s, self.credentials.headers(url, sealed))

    def replicas(self) -> dict[str, ReplicaStatus]:
        """The state of every replica this process routes to (metrics, readiness)."""
        return self.pool.status()

    def _send(
        self,
        route: Route,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        *,
        stream: bool = False,
        request_id: str | None = None,
        timeout_s: float | None = None,
        raw: tuple[bytes, str] | None = None,
    ) -> tuple[urllib3.BaseHTTPResponse, Lease]:
        if not route.urls:
            raise UpstreamUnavailable(f"The model '{route.model}' has no upstream configured.")
        self.health.ensure_started()
        for url, sealed in route.credentials:
            self._sealed[url] = sealed
        request = _Request(method, path, payload, stream, request_id, timeout_s, raw)
        tried: set[str] = set()
        last_error: ApplianceError | None = None
        for _ in range(self.max_attempts):
            lease = self.pool.acquire(route.urls, unhealthy=route.unhealthy, exclude=tried)
            if lease is None:
                break
            tried.add(lease.url)
            try:
                response = self._attempt(lease, request, sealed=route.credential(lease.url))
            except _Retry as retry:
                last_error = retry.error or last_error
                continue
            return response, lease
        raise last_error or UpstreamUnavailable(
            f"The model '{route.model}' is unavailable: no upstream could be reached."
        )

    def _attempt(
        self, lease: Lease, request: _Request, *, sealed: str | None
    ) -> urllib3.BaseHTTPResponse:
        """Send once to the leased replica; on any exit but a 2xx the lease is released."""
        pool, prefix = self._target(lease.url)
        body = (
            None
            if request.payload is None
            else json.dumps(request.payload, separators=(",", ":")).encode()
        )
        base = JSON_HEADERS if body is not None else ACCEPT_JSON
        if request.raw is not None:
            body, content_type = request.raw
            base = {"Content-Type": content_type, "Accept": "*/*"}
        if request.request_id is not None:
            base = {**base, "X-Request-Id": request.request_id}
        options: dict[str, Any] = {}
        if request.timeout_s is not None:
            options["timeout"] = urllib3.Timeout(connect=request.timeout_s, read=request.timeout_s)

        def urlopen(headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
            return pool.urlopen(
                request.method,
                prefix + request.path,
                body=body,
                headers=headers,
                preload_content=not request.stream,
                decode_content=True,
                redirect=False,
                **options,
            )

        def send(authorization: str | None) -> urllib3.BaseHTTPResponse:
            headers = base if authorization is None else {**base, "Authorization": authorization}
            try:
                return urlopen(headers)
            except StaleConnection as exc:
                if not exc.resendable(request.idempotent):
                    raise
                # the upstream closed a kept-alive connection under it: once more, anew
                log.info("upstream %s closed a kept-alive connection: %s", lease.url, exc)
                with fresh_connection():
                    return urlopen(headers)

        try:
            response = send(self.credentials.authorization(lease.url, sealed))
            if response.status == 401:
                fallback = self.credentials.fallback(lease.url, sealed)
                if fallback is not None:
                    response.close()
                    response = send(fallback)
        except RETRYABLE as exc:
            metrics.count_upstream_error(lease.url)
            lease.release(Outcome.FAILURE)
            log.warning("upstream %s failed before answering: %s", lease.url, type(exc).__name__)
            raise _Retry(None) from None
        except ReadTimeoutError:
            metrics.count_upstream_error(lease.url)
            lease.release(Outcome.FAILURE)
            raise UpstreamUnavailable("The upstream timed out.") from None
        except HTTPError as exc:
            metrics.count_upstream_error(lease.url)
            lease.release(Outcome.FAILURE)
            raise UpstreamError(f"The upstream failed: {type(exc).__name__}.") from None
        except BaseException:  # the client went away (greenlet killed) or a bug: not its fault
            lease.release(Outcome.NEUTRAL)
            raise
        if response.status < 400:
            return response
        if response.status == 401:  # the gateway's credential, not the caller's
            metrics.count_upstream_error(lease.url)
            response.close()
            lease.release(Outcome.FAILURE)
            log.error(
                "upstream %s refused the gateway's credential (401): it must be started with "
                "the engine key (or the key registered for it)",
                lease.url,
            )
            raise _Retry(UpstreamError("The upstream refused the gateway's credential."))
        failed = response.status >= 500
        if failed:
            metrics.count_upstream_error(lease.url)
        try:
            error = _error_from(response)
        finally:
            response.close()
            lease.release(Outcome.FAILURE if failed else Outcome.SUCCESS)
        if failed:
            log.warning("upstream %s answered %s", lease.url, response.status)
            raise _Retry(error)
        raise error

    def _target(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str]:
        """The connection pool of a replica's base URL and the path prefix of its API."""
        target = self._targets.get(url)
        if target is None:
            pool = self.http.connection_from_url(url)
            target = self._targets[url] = (pool, urlsplit(url).path.rstrip("/"))
        return target

    def close(self) -> None:
        self.health.stop()
        self.http.clear()
        self._probe_http.clear()


class _Request:
    """One request as the attempts send it."""

    __slots__ = (
        "idempotent",
        "method",
        "path",
        "payload",
        "raw",
        "request_id",
        "stream",
        "timeout_s",
    )

    def __init__(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        stream: bool,
        request_id: str | None,
        timeout_s: float | None,
        raw: tuple[bytes, str] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.payload = payload
        self.raw = raw  # a body already encoded, and its Content-Type
        self.stream = stream
        self.request_id = request_id
        self.timeout_s = timeout_s
        self.idempotent = method in ("GET", "HEAD") or path in IDEMPOTENT_POSTS


def _json_of(response: urllib3.BaseHTTPResponse, lease: Lease) -> Any:
    try:
        result = json.loads(response.data)
    except ValueError:
        lease.release(Outcome.FAILURE)
        raise UpstreamError("The upstream answered with a body that is not JSON.") from None
    lease.release(Outcome.SUCCESS)
    return result


class _Retry(Exception):
    """This attempt failed before anything was received: try another replica."""

    def __init__(self, error: ApplianceError | None) -> None:
        super().__init__()
        self.error = error  # None: the replica could not be reached


def _error_from(response: urllib3.BaseHTTPResponse) -> ApplianceError:
    """Relay an upstream 4xx as-is (it is about the request); hide the details of a 5xx."""
    status = response.status
    try:
        body = response.data  # read already unless streaming; error bodies are small
    except (HTTPError, OSError):
        body = b""
    if status >= 500:
        log.debug("upstream answered %s: %.200r", status, body)
        return UpstreamError(f"The upstream failed with status {status}.")
    try:
        error = json.loads(body)["error"]
        return UpstreamRejected(
            status,
            str(error.get("message", "The upstream rejected the request.")),
            type_=str(error.get("type", "invalid_request_error")),
            param=error.get("param"),
            code=error.get("code"),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return UpstreamRejected(
            status,
            "The upstream rejected the request.",
            type_="invalid_request_error",
            param=None,
            code=None,
        )

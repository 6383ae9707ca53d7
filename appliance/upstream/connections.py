"""Kept-alive connections to the upstreams, and what a broken one allows to send again.

An upstream closes a kept-alive connection that stays idle too long: the built-in engine
(gunicorn) after 2 s, vLLM (uvicorn) after 5 s. A request sent on one just as it closes
fails without an answer (urllib3: ``ProtocolError('Connection aborted.',
RemoteDisconnected(...))`` or ``ConnectionResetError``), and once any of it was written
nothing here can tell whether the upstream's application received it. So:

- **no reuse past the idle timeout**: a connection idle for longer than ``idle_timeout_s``
  (set below every upstream's keep-alive) is closed instead of reused, so the upstream
  cannot have timed it out;
- **what is left is classified** on a *reused* connection (``KeepAlivePool._make_request``):

  - ``RequestNotSent``: it broke before one write of the request succeeded. urllib3
    swallows the ``BrokenPipeError`` or ``ConnectionResetError`` of that write and then
    fails reading the status line (``RemoteDisconnected``, ``ConnectionResetError``);
    nothing (at most part of the header block, which no server acts on) reached the
    upstream: safe to send again, whatever the method;
  - ``NoAnswer``: the request was written, then the connection was closed or reset before
    the first byte of an answer (``RemoteDisconnected``, ``ConnectionResetError``,
    ``BrokenPipeError``): the upstream may have started on it, so it is sent again only
    when the request is idempotent.

  Both are ``ProtocolError``, what urllib3 raised for them before;
- ``fresh_connection()``: the requests made inside it (this thread or greenlet) each get a
  new connection, for sending such a request again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from http.client import HTTPException, RemoteDisconnected
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError

__all__ = [
    "KeepAlivePoolManager",
    "NoAnswer",
    "RequestNotSent",
    "StaleConnection",
    "fresh_connection",
]

_fresh: ContextVar[bool] = ContextVar("appliance_fresh_connection", default=False)
# Read before any byte of an answer: the peer closed (RemoteDisconnected is the empty status
# line) or reset the connection; a timeout is not one of these (the upstream is slow).
_NO_ANSWER = (RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class StaleConnection(ProtocolError):
    """A reused kept-alive connection broke before any byte of the answer came back."""

    def resendable(self, idempotent: bool) -> bool:
        raise NotImplementedError


class RequestNotSent(StaleConnection):
    """It broke before the request was written: the upstream cannot have acted on it."""

    def resendable(self, idempotent: bool) -> bool:
        return True


class NoAnswer(StaleConnection):
    """The request was written, then the connection closed without an answer."""

    def resendable(self, idempotent: bool) -> bool:
        return idempotent


@contextlib.contextmanager
def fresh_connection() -> Iterator[None]:
    """Requests made inside use new connections, never a kept-alive one."""
    token = _fresh.set(True)
    try:
        yield
    finally:
        _fresh.reset(token)


class KeptHTTPConnection(HTTPConnection):
    """A connection that knows, for its current request, if it was reused and if any of the
    request was written."""

    idle_since = 0.0  # time.monotonic() when it last went back to its pool
    reused = False
    wrote = False

    def send(self, data: Any) -> None:  # every write of a request (http.client's)
        super().send(data)
        self.wrote = True


class KeptHTTPSConnection(KeptHTTPConnection, HTTPSConnection):
    pass


class KeepAlivePool(HTTPConnectionPool):
    """A connection pool that does not reuse a connection idle past ``idle_timeout_s`` and
    tells a stale connection's failure apart (``RequestNotSent``, ``NoAnswer``)."""

    ConnectionCls = KeptHTTPConnection
    idle_timeout_s = 1.0

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        if isinstance(conn, KeptHTTPConnection):
            if not conn.is_closed and (
                _fresh.get() or time.monotonic() - conn.idle_since > self.idle_timeout_s
            ):
                conn.close()  # connects again on its next request
            conn.reused = not conn.is_closed
            conn.wrote = False
        return conn

    def _put_conn(self, conn: Any) -> None:
        if isinstance(conn, KeptHTTPConnection):
            conn.idle_since = time.monotonic()
        super()._put_conn(conn)

    def _make_request(self, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._make_request(conn, method, url, *args, **kwargs)
        except (OSError, HTTPException) as exc:
            if not isinstance(conn, KeptHTTPConnection) or not conn.reused:
                raise
            if isinstance(exc, TimeoutError):
                raise
            if not conn.wrote:
                raise RequestNotSent(
                    "The kept-alive connection broke before the request.", exc
                ) from exc
            if isinstance(exc, _NO_ANSWER):
                raise NoAnswer("The kept-alive connection closed without an answer.", exc) from exc
            raise


class KeepAliveHTTPSPool(KeepAlivePool, HTTPSConnectionPool):
    ConnectionCls = KeptHTTPSConnection


class KeepAlivePoolManager(urllib3.PoolManager):
    """A ``PoolManager`` of ``KeepAlivePool``s whose connections idle at most ``idle_timeout_s``."""

    def __init__(self, idle_timeout_s: float, **kwargs: Any) -> None:
        if idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be positive")
        super().__init__(**kwargs)
        self.idle_timeout_s = idle_timeout_s
        self.pool_classes_by_scheme = {"http": KeepAlivePool, "https": KeepAliveHTTPSPool}

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        if isinstance(pool, KeepAlivePool):
            pool.idle_timeout_s = self.idle_timeout_s
        return pool

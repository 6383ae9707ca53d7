"""Chunked request bodies held to the size limit like any other: 413, never truncated.

Werkzeug enforces ``MAX_CONTENT_LENGTH`` on a body without a Content-Length (sent with
``Transfer-Encoding: chunked``) by wrapping it in a stream that stops at the limit, and
``request.get_data()`` returns what it read up to there without an error: a body over the
limit is silently cut to the limit, and the cut body answered as if it were the whole.

This middleware reads such a body first, up to one byte past the limit. Within the limit,
the app sees it as a body with a Content-Length. Over it, the app sees a Content-Length
over the limit and no body, so reading it raises the same 413 as a declared oversized body.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

READ_SIZE = 64 * 1024


class BoundedChunkedBody:
    """WSGI middleware: a chunked body is read whole (up to ``limit`` + 1 bytes) before the app."""

    def __init__(self, app: WSGIApplication, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if is_chunked(environ):
            buffer_body(environ, self.limit)
        return self.app(environ, start_response)


def is_chunked(environ: WSGIEnvironment) -> bool:
    """A body without a declared length: the server dechunks it as it is read."""
    if environ.get("CONTENT_LENGTH"):
        return False
    return "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()


def buffer_body(environ: WSGIEnvironment, limit: int) -> None:
    """Replace the input by the body read so far, with its length (``limit`` + 1 if over)."""
    stream: Any = environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    complete = True
    try:
        while size <= limit:
            chunk = stream.read(min(READ_SIZE, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (OSError, ValueError):  # a broken chunk or the client gone (werkzeug's dechunker)
        complete = False
    # From here on the body has a length and is no longer the server's to terminate.
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    if size > limit:
        # Declared too large, and nothing to read: the first read of the body raises 413.
        environ["wsgi.input"] = io.BytesIO(b"")
        environ["CONTENT_LENGTH"] = str(limit + 1)
        return
    body = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(body)
    # A body cut short claims one byte more than it has: reading it is a client disconnect
    # (400), as it would have been without this middleware.
    environ["CONTENT_LENGTH"] = str(len(body) if complete else len(body) + 1)

"""Forwarding requests to a model's upstream servers over pooled keep-alive connections.

An upstream that cannot be reached is skipped for the next one; once any byte of a
response has been received the request is never retried elsewhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from appliance.errors import ApplianceError, UpstreamError, UpstreamRejected, UpstreamUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """A snapshot of where a model is served, taken from the registry for one request."""

    model: str
    served_name: str
    urls: tuple[str, ...]


class UpstreamStream:
    """An open streaming response; iterate its lines, and close it to cancel the upstream."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def iter_lines(self) -> Iterator[str]:
        try:
            yield from self._response.iter_lines()
        except httpx.HTTPError as exc:
            raise UpstreamError(f"The upstream stream broke off: {type(exc).__name__}.") from None

    def close(self) -> None:
        self._response.close()


class UpstreamClient:
    def __init__(self, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.http = httpx.Client(
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
        )

    def post_json(self, route: Route, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = self._send(route, path, payload, stream=False)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError("The upstream answered with a body that is not JSON.") from None

    def open_stream(self, route: Route, path: str, payload: dict[str, Any]) -> UpstreamStream:
        return UpstreamStream(self._send(route, path, payload, stream=True))

    def _send(
        self, route: Route, path: str, payload: dict[str, Any], *, stream: bool
    ) -> httpx.Response:
        if not route.urls:
            raise UpstreamUnavailable(f"The model '{route.model}' has no upstream configured.")
        for url in route.urls:
            request = self.http.build_request("POST", f"{url}{path}", json=payload)
            try:
                response = self.http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                log.warning("upstream %s unreachable: %s", url, type(exc).__name__)
                continue
            except httpx.TimeoutException:
                raise UpstreamUnavailable(f"The model '{route.model}' timed out.") from None
            except httpx.HTTPError as exc:
                raise UpstreamError(f"The upstream failed: {type(exc).__name__}.") from None
            if response.status_code >= 400:
                raise _error_from(response)
            return response
        raise UpstreamUnavailable(
            f"The model '{route.model}' is unavailable: no upstream could be reached."
        )

    def close(self) -> None:
        self.http.close()


def _error_from(response: httpx.Response) -> ApplianceError:
    """Relay an upstream 4xx as-is (it is about the request); hide the details of a 5xx."""
    body = response.read()
    response.close()
    status = response.status_code
    if status >= 500:
        log.warning("upstream answered %s: %.200r", status, body)
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


def probe(http: httpx.Client, url: str, timeout_s: float = 2.0) -> str | None:
    """None if ``url`` answers its health endpoint, else a short reason."""
    try:
        response = http.get(f"{url}/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None if response.status_code == 200 else f"HTTP {response.status_code}"

"""Loading and unloading LoRA adapters on an upstream at runtime (vLLM's protocol).

vLLM (started with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) and the built-in engine
(``appliance engine serve --allow-runtime-lora-updating``) answer the same two calls,
``POST /v1/load_lora_adapter`` and ``POST /v1/unload_lora_adapter``, so the rollout code
drives both through these two functions.

Both require the upstream's credential (``auth``: the ``Authorization`` values to try, in
order; the next one only after a 401, e.g. the engine key a rotation replaced, for a
server not restarted with the new one yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from appliance.errors import UpstreamError, UpstreamUnavailable

ALREADY_LOADED = "has already been loaded"
NOT_FOUND = "cannot be found"


class AdapterError(UpstreamError):
    """The upstream refused to load or unload an adapter; ``message`` is the upstream's.

    ``upstream_status`` is the status it answered (404 on a route: runtime LoRA updating
    is off there).
    """

    def __init__(self, message: str, *, upstream_status: int) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


def load_adapter(
    base_url: str, name: str, path: str, *, timeout: float, auth: Sequence[str] = ()
) -> None:
    """Load the PEFT adapter in ``path`` (a path on the upstream's machine) as model ``name``.

    Idempotent: an upstream that already serves ``name`` from ``path`` counts as success
    (vLLM answers 400 "has already been loaded"); serving ``name`` from another path is an
    ``AdapterError``. Raises ``AdapterError`` with the upstream's message when it refuses,
    ``UpstreamUnavailable`` when it cannot be reached.
    """
    body = {"lora_name": name, "lora_path": path}
    response = _post(base_url, "load_lora_adapter", body, timeout, auth)
    if response.status_code == 200:
        return
    message = _message(response)
    if response.status_code == 400 and ALREADY_LOADED in message:
        root = _served_root(base_url, name, timeout, response.request.headers)
        if root == path:
            return
        raise AdapterError(
            f"{message} (from {root!r}, not {path!r})", upstream_status=response.status_code
        )
    raise AdapterError(message, upstream_status=response.status_code)


def unload_adapter(base_url: str, name: str, *, timeout: float, auth: Sequence[str] = ()) -> None:
    """Unload adapter ``name``; requests for it get 404 afterwards.

    Idempotent: an upstream that does not have ``name`` loaded counts as success (vLLM
    answers 404 "cannot be found"; a 404 for the route itself is an ``AdapterError``).
    Raises ``AdapterError`` with the upstream's message when it refuses,
    ``UpstreamUnavailable`` when it cannot be reached.
    """
    response = _post(base_url, "unload_lora_adapter", {"lora_name": name}, timeout, auth)
    if response.status_code == 200:
        return
    message = _message(response)
    if response.status_code == 404 and NOT_FOUND in message:
        return
    raise AdapterError(message, upstream_status=response.status_code)


def _v1(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1") + "/v1"


def _post(
    base_url: str, route: str, body: dict[str, Any], timeout: float, auth: Sequence[str]
) -> httpx.Response:
    url = f"{_v1(base_url)}/{route}"
    attempts: list[dict[str, str]] = [{"Authorization": value} for value in auth] or [{}]
    for headers in attempts:
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"The upstream {base_url} could not be reached ({exc})."
            ) from exc
        if response.status_code != 401:
            return response
    raise AdapterError(
        f"The upstream {base_url} refused the appliance's credential (HTTP 401): it must be "
        "started with the engine key (or the key registered for it).",
        upstream_status=401,
    )


def _message(response: httpx.Response) -> str:
    """The error message of vLLM's body (nested or flat), or why there is none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(body.get("detail"), str):  # FastAPI's own 404 for an absent route
            return f"{body['detail']} (is runtime LoRA updating enabled upstream?)"
    text = response.text.strip()[:200]
    return text or f"The upstream answered {response.status_code}."


def _served_root(base_url: str, name: str, timeout: float, sent: httpx.Headers) -> str | None:
    """The path the upstream serves adapter ``name`` from (``root`` in ``/v1/models``)."""
    headers = {"Authorization": sent["Authorization"]} if "Authorization" in sent else {}
    try:
        response = httpx.get(f"{_v1(base_url)}/models", headers=headers, timeout=timeout)
        cards = response.json()["data"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise UpstreamUnavailable(f"The upstream {base_url} did not list its models.") from exc
    for card in cards:
        if isinstance(card, dict) and card.get("id") == name:
            root = card.get("root")
            return str(root) if root is not None else None
    return None

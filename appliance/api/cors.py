"""CORS for browser apps on the intranet: exact origins from ``cors_allowed_origins``.

Off by default (no origin allowed: no CORS header is ever sent). For an allowed origin,
every ``/v1`` answer (errors included) carries ``Access-Control-Allow-Origin`` with that
origin, and exposes ``X-Request-Id`` and the ``x-ratelimit-*`` headers to the page (so
does every answer of the vLLM endpoints served at the root: ``/tokenize``, ``/rerank``...); a
preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered without a
credential, allowing ``Authorization``, ``Content-Type`` and the other headers the OpenAI
SDKs send. No cookies are involved (the API takes bearer credentials), so credentials
are not allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import Flask, current_app, request
from flask_cors import CORS

from appliance.api.endpoints import ROOT_PATHS
from appliance.api.routes import is_api_path
from appliance.limits.budget import HEADER_NAMES

PATH_PREFIX = "/v1/"
RESOURCES = rf"^({re.escape(PATH_PREFIX)}.*|{'|'.join(re.escape(p) for p in sorted(ROOT_PATHS))})$"
ALLOWED_METHODS = ["GET", "POST", "OPTIONS"]
ALLOWED_HEADERS: list[str | re.Pattern[str]] = [
    "Authorization",
    "Content-Type",
    "X-Request-Id",
    "X-Conversation-Id",
    "OpenAI-Organization",
    "OpenAI-Project",
    re.compile(r"x-stainless-[a-z0-9-]+\Z", re.IGNORECASE),  # the OpenAI SDKs' own
]
EXPOSED_HEADERS = ["X-Request-Id", *HEADER_NAMES]
PREFLIGHT_MAX_AGE_S = 600
EXTENSION = "appliance_cors_origins"


def init_app(app: Flask, origins: Iterable[str]) -> None:
    """Answer CORS for ``origins`` (exact ``scheme://host[:port]``, lower case) on the API."""
    allowed = frozenset(origins)
    app.extensions[EXTENSION] = allowed
    if not allowed:
        return
    CORS(
        app,
        resources={RESOURCES: {}},
        # compiled, so that flask-cors never reads an origin as a regular expression
        origins=[re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in allowed],
        methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_S,
        supports_credentials=False,
        always_send=False,  # a request without Origin gets no CORS header
        vary_header=True,
    )


def is_preflight() -> bool:
    """This request is a CORS preflight to the API from an allowed origin (it needs no key)."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return False
    origin = (request.headers.get("Origin") or "").lower()
    allowed: frozenset[str] = current_app.extensions.get(EXTENSION, frozenset())
    return origin in allowed and is_api_path(request.path)

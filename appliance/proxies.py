"""Both apps behind nginx: whose forwarding headers to trust."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def behind_proxies(app: Flask, hops: int) -> None:
    """Trust ``hops`` reverse proxies' X-Forwarded-For/-Proto: the audit then records the
    client's address, not nginx's. With 0 (no proxy) those headers are ignored."""
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

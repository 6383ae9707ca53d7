"""WSGI entry points for gunicorn: ``appliance.wsgi:api`` and ``appliance.wsgi:portal``.

This is the process boundary, so it is the one place that reads the settings from the
environment. Each app is built only when gunicorn asks for it.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "api":
        from appliance.api.app import create_app

        return create_app()
    if name == "portal":
        from appliance.portal.app import create_app as create_portal

        return create_portal()
    raise AttributeError(name)

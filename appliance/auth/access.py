"""What each route of both apps declares about who may call it, and the one decision on it.

Every view function carries exactly one declaration:

- ``PUBLIC``: anyone, signed in or not (login pages, health checks);
- ``AUTHENTICATED``: any signed-in user or valid API principal, whatever the roles;
- a set of :class:`Permission` values: a principal whose roles grant any one of them.

The portal declares with decorators (``appliance.portal.auth``); the API app declares
its endpoints in one table (``appliance.api.app.ROUTE_ACCESS``). Each app's
``before_request`` hook calls :func:`decide` for every request, and a route that
declares nothing is refused (fail closed): the RBAC matrix test also fails on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, TypeVar

from flask import Flask

from appliance.auth.rbac import Permission, RbacPolicy

F = TypeVar("F", bound=Callable[..., Any])
ACCESS_ATTR = "appliance_access"


class Open(Enum):
    """Declarations that name no permission."""

    PUBLIC = "public"
    AUTHENTICATED = "authenticated"


PUBLIC = Open.PUBLIC
AUTHENTICATED = Open.AUTHENTICATED
Access = Open | frozenset[Permission]


def any_of(*permissions: Permission) -> frozenset[Permission]:
    if not permissions:
        raise ValueError("name at least one permission")
    return frozenset(permissions)


def declare(view: F, access: Access) -> F:
    """Attach ``access`` to ``view``; declaring twice is a programming error."""
    existing = view.__dict__.get(ACCESS_ATTR)
    if existing is not None and existing != access:
        raise RuntimeError(f"{view.__qualname__} declares its access twice")
    view.__dict__[ACCESS_ATTR] = access
    return view


def access_of(view: Callable[..., Any] | None) -> Access | None:
    """What a view declared (None: nothing, so nobody may call it)."""
    return getattr(view, ACCESS_ATTR, None)


def endpoint_access(app: Flask, endpoint: str | None) -> Access | None:
    if endpoint == "static":
        return PUBLIC
    return access_of(app.view_functions.get(endpoint or ""))


def declare_endpoints(app: Flask, table: Mapping[str, Access]) -> None:
    """Declare each endpoint's access from ``table``, which must name every route exactly."""
    routes = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    missing, unknown = sorted(routes - set(table)), sorted(set(table) - routes)
    if missing or unknown:
        raise RuntimeError(f"route access table: undeclared {missing}, no such route {unknown}")
    for endpoint, access in table.items():
        declare(app.view_functions[endpoint], access)


def undeclared_routes(app: Flask) -> list[str]:
    """Rules whose view declares nothing (a test keeps this empty)."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if endpoint_access(app, rule.endpoint) is None
    )


def allows(policy: RbacPolicy, roles: Iterable[str], access: Access | None) -> bool:
    """May a signed-in principal holding ``roles`` call a route declaring ``access``?"""
    if access is None:
        return False
    if isinstance(access, Open):
        return True
    granted = policy.permissions_of(list(roles))
    return not granted.isdisjoint(access)


def describe(access: Access) -> str:
    """Words for a refusal: the permission(s) the route needs."""
    if isinstance(access, Open):
        return access.value
    return " or ".join(sorted(p.value for p in access))

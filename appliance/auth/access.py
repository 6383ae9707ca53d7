"""What each route of both apps declares about who may call it, and the one decision on it.

Every view function of the API and of the portal carries exactly one declaration, by
one of the decorators here, placed under the route's own::

    @bp.post("/chat/completions")
    @require(Permission.API_MODEL_INVOKE)
    def chat_completions(): ...

- :func:`public` (``PUBLIC``): anyone, signed in or not (login pages, health checks);
- :func:`login_required` (``AUTHENTICATED``): any signed-in user or valid API principal,
  whatever the roles;
- :func:`require`: a principal whose roles grant any one of the permissions named.

Both factories call :func:`check_declared`, so an app with a route that declares
nothing is not built; each app's ``before_request`` hook reads the declaration with
:func:`endpoint_access` and decides with :func:`allows` for every request, and a view
that declares nothing (one added after the factory ran) is refused (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def public(view: F) -> F:
    """Anyone may call this view, signed in or not."""
    return declare(view, PUBLIC)


def login_required(view: F) -> F:
    """Any signed-in user (portal) or authenticated principal (API), whatever the roles."""
    return declare(view, AUTHENTICATED)


def require(*permissions: Permission) -> Callable[[F], F]:
    """A principal whose roles grant any one of ``permissions``; else 403."""
    declared = any_of(*permissions)

    def decorator(view: F) -> F:
        return declare(view, declared)

    return decorator


def access_of(view: Callable[..., Any] | None) -> Access | None:
    """What a view declared (None: nothing, so nobody may call it)."""
    return getattr(view, ACCESS_ATTR, None)


def endpoint_access(app: Flask, endpoint: str | None) -> Access | None:
    if endpoint == "static":
        return PUBLIC
    return access_of(app.view_functions.get(endpoint or ""))


def check_declared(app: Flask) -> None:
    """Refuse (RuntimeError) an app with a route whose view declares no access."""
    undeclared = sorted(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if endpoint_access(app, rule.endpoint) is None
    )
    if undeclared:
        raise RuntimeError(f"routes that declare no access: {undeclared}")


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

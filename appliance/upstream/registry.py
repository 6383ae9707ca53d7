"""Registering models and routing a public model name (a model or an alias) to upstreams."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db import Database
from appliance.errors import InvalidRequest, NotFound, UpstreamUnavailable
from appliance.models import BUILTIN, OPENAI, AliasTarget, Model, ModelAlias, Upstream
from appliance.ttlcache import TtlCache
from appliance.upstream import vllm_options
from appliance.upstream.credentials import seal_credential
from appliance.upstream.routes import Route

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_rng = random.Random()  # noqa: S311 - canary splits, not security


def add_model(
    session: Session,
    name: str,
    *,
    path: Path | None = None,
    upstream_urls: list[str] | None = None,
    served_name: str | None = None,
    upstream_key: str | None = None,
    sealing_key: bytes | None = None,
    vllm: Mapping[str, Any] | None = None,
    vllm_version: str = vllm_options.VLLM_VERSION,
) -> Model:
    """Register a model served by the built-in engine (``path``) or by upstream URLs.

    The upstreams are sent the engine key, or ``upstream_key`` (sealed with ``sealing_key``)
    when they require a key of their own. An upstream model gets the vLLM options of its
    family (DeepSeek-R1: the deepseek_r1 reasoning parser, ...) overridden by ``vllm``
    (None values: that flag off), checked against vLLM ``vllm_version``."""
    if not MODEL_NAME_RE.match(name):
        raise InvalidRequest("a model name is 1-128 letters, digits, '.', '_', ':', '/' or '-'")
    if (path is None) == (not upstream_urls):
        raise InvalidRequest("give exactly one of --path or --upstream")
    if upstream_key is not None and path is not None:
        raise InvalidRequest("a built-in model's engine takes the engine key, not a key of its own")
    if vllm and path is not None:
        _refuse_builtin(vllm)
    if session.scalar(select(Model.id).where(Model.name == name)) is not None:
        raise InvalidRequest(f"a model named {name!r} is already registered")
    if session.scalar(select(ModelAlias.id).where(ModelAlias.name == name)) is not None:
        raise InvalidRequest(f"{name!r} is already the name of a model alias")
    if path is not None:
        if not (path / "config.json").is_file():
            raise InvalidRequest(f"{path} is not a model directory (no config.json)")
        model = Model(name=name, kind=BUILTIN, path=str(path.resolve()), served_name=name)
    else:
        urls = [_normalise_url(url) for url in upstream_urls or []]
        model = Model(name=name, kind=OPENAI, served_name=served_name or name)
        names = [name, model.served_name]
        _apply(model, _checked(vllm_options.resolve, names, vllm or {}, vllm_version))
        model.upstreams = [Upstream(url=url) for url in urls]
        if upstream_key is not None:
            set_upstream_key(model, upstream_key, sealing_key)
    session.add(model)
    session.flush()
    return model


def set_vllm_options(
    model: Model,
    vllm: Mapping[str, Any],
    *,
    defaults: bool = False,
    vllm_version: str = vllm_options.VLLM_VERSION,
) -> dict[str, tuple[Any, Any]]:
    """Change the vLLM options ``vllm`` gives (None: that flag off), the others kept, or
    with ``defaults`` set to the family's defaults; returns each changed field's (before,
    after). Nothing is changed unless the whole result is valid."""
    if model.kind == BUILTIN:
        _refuse_builtin(vllm or {"tool_call_parser": None})
    names = [model.name, model.served_name]
    if defaults:
        options = _checked(vllm_options.resolve, names, vllm, vllm_version)
    else:
        current = {field: getattr(model, field) for field in vllm_options.FIELDS}
        if vllm.get(vllm_options.TOOL_CALL_PARSER, "") is None:
            current[vllm_options.ENABLE_AUTO_TOOL_CHOICE] = False  # no parser, no auto choice
        options = _checked(vllm_options.validate, {**current, **vllm}, vllm_version)
    changed = {
        field: (getattr(model, field), value)
        for field, value in options.items()
        if getattr(model, field) != value
    }
    _apply(model, options)
    return changed


def vllm_serve_args(model: Model, vllm_version: str = vllm_options.VLLM_VERSION) -> list[str]:
    """The ``vllm serve`` arguments of a registered model's vLLM options."""
    options = {field: getattr(model, field) for field in vllm_options.FIELDS}
    return _checked(vllm_options.serve_args, options, vllm_version)


def vllm_options_of(model: Model) -> dict[str, Any]:
    """The options a model has (only those that give a flag)."""
    return {
        field: value
        for field in vllm_options.FIELDS
        if (value := getattr(model, field)) is not None and value is not False
    }


def _checked(check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except vllm_options.VllmOptionError as exc:
        raise InvalidRequest(exc.message, param=exc.field) from None


def _apply(model: Model, options: Mapping[str, Any]) -> None:
    for field in vllm_options.FIELDS:
        setattr(model, field, options[field])


def _refuse_builtin(vllm: Mapping[str, Any]) -> None:
    field = next(iter(vllm))
    raise InvalidRequest(
        f"{field} is a vLLM option: a built-in model is served by the built-in engine",
        param=field,
    )


def set_upstream_key(model: Model, key: str | None, sealing_key: bytes | None) -> None:
    """Give every upstream of ``model`` its own ``key`` (None: back to the engine key)."""
    if model.kind == BUILTIN and key is not None:
        raise InvalidRequest("a built-in model's engine takes the engine key, not a key of its own")
    for upstream in model.upstreams:
        if key is None:
            upstream.credential = None
            continue
        if sealing_key is None:
            raise ValueError("a sealing key is needed to keep an upstream's key")
        upstream.credential = seal_credential(sealing_key, upstream.url, key)


def _normalise_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidRequest(f"upstream {url!r} is not an http(s) URL")
    base = url.rstrip("/")
    return base.removesuffix("/v1")


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.name)))


def get_model(session: Session, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name, Model.enabled.is_(True)))
    if model is None:
        raise not_found(name)
    return model


def not_found(name: str) -> NotFound:
    return NotFound(f"The model '{name}' does not exist.", param="model", code="model_not_found")


def assign_builtin_ports(session: Session, base_port: int) -> list[tuple[Model, int]]:
    """Give each built-in model a local engine port and point its upstream there."""
    assigned = []
    builtins = session.scalars(select(Model).where(Model.kind == BUILTIN).order_by(Model.id))
    for offset, model in enumerate(builtins):
        port = base_port + offset
        model.upstreams = [Upstream(url=f"http://127.0.0.1:{port}")]
        assigned.append((model, port))
    session.flush()
    return assigned


def route_for(model: Model) -> Route:
    """Where to send a request for ``model``: upstreams known to be down go last."""
    ordered = sorted(model.upstreams, key=lambda upstream: upstream.healthy is False)
    return Route(
        model.name,
        model.served_name,
        tuple(upstream.url for upstream in ordered),
        unhealthy=frozenset(u.url for u in model.upstreams if u.healthy is False),
        base_model=model.name,
        credentials=tuple((u.url, u.credential) for u in model.upstreams if u.credential),
    )


def resolve_route(session: Session, name: str, *, rng: random.Random | None = None) -> Route:
    """The route for a public model name (the one function the API calls to route).

    ``name`` is a model, or an alias: then one of its targets is drawn by weight, and the
    upstream is sent the target's LoRA adapter name (vLLM's ``model=<adapter>``) or the
    base model's served name.
    """
    return _route(_lookup(session, name), rng)


def _lookup(session: Session, name: str) -> Model | ModelAlias:
    model = session.scalar(select(Model).where(Model.name == name, Model.enabled.is_(True)))
    if model is not None:
        return model
    alias = session.scalar(select(ModelAlias).where(ModelAlias.name == name))
    if alias is None:
        raise not_found(name)
    return alias


def _route(entry: Model | ModelAlias, rng: random.Random | None) -> Route:
    if isinstance(entry, Model):
        return route_for(entry)
    target = pick_target(entry, rng or _rng)
    base = route_for(target.model)
    return replace(
        base,
        model=entry.name,
        served_name=target.adapter or base.served_name,
        alias=entry.name,
        adapter=target.adapter,
        version=target.version or None,
    )


def pick_target(alias: ModelAlias, rng: random.Random) -> AliasTarget:
    """One target of ``alias``, drawn by weight among those whose model is enabled."""
    live = [t for t in alias.targets if t.model.enabled and t.weight > 0]
    if not live:
        raise UpstreamUnavailable(f"The model '{alias.name}' has no enabled target.")
    return rng.choices(live, weights=[t.weight for t in live])[0]


class RegistryCache:
    """Models and aliases by public name, cached per process for ``ttl_s`` (registry
    changes reach every worker within that time); the canary draw stays per request."""

    def __init__(self, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._cache: TtlCache[str, Model | ModelAlias] = TtlCache(ttl_s, clock=clock)

    def resolve(self, db: Database, name: str, *, rng: random.Random | None = None) -> Route:
        return _route(self._cache.get(name, lambda: _lookup_in(db, name)), rng)


def _lookup_in(db: Database, name: str) -> Model | ModelAlias:
    with db.session() as session:
        return _lookup(session, name)

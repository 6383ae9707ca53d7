"""Model aliases: public names routed to weighted (base model, LoRA adapter) targets.

An alias such as ``support-bot`` points at one or more targets, each a registered
model, optionally a LoRA adapter served with it (vLLM ``--lora-modules NAME=PATH``),
a version label and a weight. Each request draws a target by weight (see
``registry.resolve_route``), so a canary is an alias with weights like 90/10 between
two versions; moving traffic is ``set_alias_weights``. Weights may be 0 (a target kept
but drained); at least one must be positive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import InvalidRequest, NotFound
from appliance.models import AliasTarget, Model, ModelAlias
from appliance.upstream.registry import MODEL_NAME_RE

ADAPTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9._-]{0,64}$")
MAX_WEIGHT = 1_000_000


class TargetSpec(NamedTuple):
    """One target as given by an admin; a plain ``(model, adapter, weight, version)`` works too."""

    model: str
    adapter: str | None = None
    weight: int = 100
    version: str = ""

    @property
    def key(self) -> str:
        return f"{self.model}+{self.adapter}" if self.adapter else self.model


def parse_target(text: str) -> TargetSpec:
    """``MODEL[+ADAPTER]=WEIGHT[@VERSION]`` (the CLI's form; model names may contain ':')."""
    left, sep, right = text.rpartition("=")
    if not sep or not left:
        raise InvalidRequest(f"target {text!r}: expected MODEL[+ADAPTER]=WEIGHT[@VERSION]")
    weight, _, version = right.partition("@")
    model, _, adapter = left.partition("+")
    try:
        number = int(weight)
    except ValueError:
        raise InvalidRequest(f"target {text!r}: the weight {weight!r} is not a number") from None
    return TargetSpec(model, adapter or None, number, version)


def add_alias(
    session: Session, name: str, targets: Iterable[TargetSpec | tuple[object, ...]]
) -> ModelAlias:
    """Create an alias; refused if the name is taken by a model or an alias."""
    if not MODEL_NAME_RE.match(name):
        raise InvalidRequest("an alias name is 1-128 letters, digits, '.', '_', ':', '/' or '-'")
    if session.scalar(select(Model.id).where(Model.name == name)) is not None:
        raise InvalidRequest(f"{name!r} is already the name of a model")
    if session.scalar(select(ModelAlias.id).where(ModelAlias.name == name)) is not None:
        raise InvalidRequest(f"an alias named {name!r} already exists")
    specs = [_spec(target) for target in targets]
    if not specs:
        raise InvalidRequest("an alias needs at least one target")
    _check_unique(specs)
    _check_weights(name, [spec.weight for spec in specs])
    alias = ModelAlias(name=name)
    alias.targets = [
        AliasTarget(
            model=_model(session, spec.model),
            adapter=spec.adapter,
            weight=spec.weight,
            version=spec.version,
        )
        for spec in specs
    ]
    session.add(alias)
    session.flush()
    return alias


def set_alias_weights(session: Session, name: str, weights: Mapping[str, int]) -> ModelAlias:
    """Change the weights of some targets, each named by its version or ``MODEL[+ADAPTER]``.

    Targets not named keep their weight; the result must still have a positive weight.
    """
    alias = get_alias(session, name)
    new = {target.id: target.weight for target in alias.targets}
    for key, weight in weights.items():
        matches = [t for t in alias.targets if key in {t.version, target_key(t)}]
        if len(matches) != 1:
            known = ", ".join(t.version or target_key(t) for t in alias.targets)
            problem = "matches no target" if not matches else "matches several targets"
            raise InvalidRequest(f"{key!r} {problem} of alias {name!r} (targets: {known})")
        new[matches[0].id] = _weight(weight)
    _check_weights(name, list(new.values()))
    for target in alias.targets:
        target.weight = new[target.id]
    session.flush()
    return alias


def get_alias(session: Session, name: str) -> ModelAlias:
    alias = session.scalar(select(ModelAlias).where(ModelAlias.name == name))
    if alias is None:
        raise NotFound(f"The alias '{name}' does not exist.", param="model", code="model_not_found")
    return alias


def list_aliases(session: Session) -> list[ModelAlias]:
    return list(session.scalars(select(ModelAlias).order_by(ModelAlias.name)))


def delete_alias(session: Session, name: str) -> None:
    session.delete(get_alias(session, name))
    session.flush()


def target_key(target: AliasTarget) -> str:
    """How a target is named in ``set_alias_weights`` and listings: ``MODEL[+ADAPTER]``."""
    return TargetSpec(target.model.name, target.adapter).key


def _spec(target: TargetSpec | tuple[object, ...]) -> TargetSpec:
    try:
        spec = TargetSpec(*target)
    except TypeError:
        raise InvalidRequest("a target is (model, adapter, weight, version)") from None
    if not isinstance(spec.model, str) or not MODEL_NAME_RE.match(spec.model):
        raise InvalidRequest(f"target model {spec.model!r} is not a valid model name")
    if spec.adapter is not None and (
        not isinstance(spec.adapter, str) or not ADAPTER_RE.match(spec.adapter)
    ):
        raise InvalidRequest(
            f"adapter {spec.adapter!r}: 1-255 letters, digits, '.', '_', '/' or '-'"
        )
    if not isinstance(spec.version, str) or not VERSION_RE.match(spec.version):
        raise InvalidRequest(f"version {spec.version!r}: up to 64 letters, digits, '.', '_', '-'")
    return spec._replace(weight=_weight(spec.weight))


def _weight(weight: object) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise InvalidRequest(f"a weight is a whole number from 0 to {MAX_WEIGHT}, not {weight!r}")
    return weight


def _check_unique(specs: list[TargetSpec]) -> None:
    keys = [spec.key for spec in specs]
    versions = [spec.version for spec in specs if spec.version]
    for label, values in (("target", keys), ("version", versions)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise InvalidRequest(f"{label} {repeated[0]!r} is given more than once")


def _check_weights(name: str, weights: list[int]) -> None:
    if not any(weights):
        raise InvalidRequest(f"alias {name!r}: at least one target needs a weight above 0")


def _model(session: Session, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise InvalidRequest(f"target model {name!r} is not registered")
    return model

"""``policies/desensitization.yaml``: what to do with each type of personal data.

Validated once at load; an error names the file and the line. Shape::

    actions:            # per type; a type not listed is masked
      CN_PHONE: pseudonymize
      US_SSN: redact
    restore: true       # placeholders in answers are restored for the caller
    output: mask        # personal data the model wrote itself: mask | flag | allow
    dictionaries:       # CUSTOM terms, by list name
      codenames: [Project Falcon, 天穹计划]
    overrides:          # per role and per API key prefix, on top of ``actions``
      roles: {auditor: {CN_PHONE: redact}}
      keys: {sk-app-abcd1234: {EMAIL: allow}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from appliance import policyfile
from appliance.errors import PolicyError
from appliance.policyfile import line as _line
from appliance.privacy.detectors import TYPES
from appliance.privacy.dictionary import Dictionary

ACTIONS = ("allow", "mask", "redact", "hash", "pseudonymize", "block")
OUTPUT_ACTIONS = ("mask", "flag", "allow")
DEFAULT_ACTION = "mask"


@dataclass(frozen=True)
class PrivacyPolicy:
    actions: Mapping[str, str]
    restore: bool = True
    output: str = "mask"
    role_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    key_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    dictionary: Dictionary = field(default_factory=lambda: Dictionary([]))

    def actions_for(
        self, roles: Iterable[str] = (), key_prefix: str | None = None
    ) -> dict[str, str]:
        """The action per type for a caller: the defaults, then its roles', then its key's."""
        actions = {name: self.actions.get(name, DEFAULT_ACTION) for name in TYPES}
        for role in sorted(roles):
            actions.update(self.role_overrides.get(role, {}))
        if key_prefix is not None:
            actions.update(self.key_overrides.get(key_prefix, {}))
        return actions


def load_privacy_policy(path: Path) -> PrivacyPolicy:
    """Load and validate, or raise PolicyError naming the file and the line."""
    root = policyfile.compose(path, "desensitization policy")
    top = _mapping(path, root, "the policy")
    unknown = set(top) - {"actions", "restore", "output", "overrides", "dictionaries"}
    if unknown:
        name = sorted(unknown)[0]
        raise PolicyError(f"{path}:{_line(top[name][0])}: unknown field {name!r}")
    actions = _actions(path, top["actions"][1]) if "actions" in top else {}
    restore = policyfile.value(top["restore"][1]) if "restore" in top else True
    if not isinstance(restore, bool):
        raise PolicyError(f"{path}:{_line(top['restore'][1])}: restore must be true or false")
    output = policyfile.value(top["output"][1]) if "output" in top else "mask"
    if output not in OUTPUT_ACTIONS:
        where = _line(top["output"][1])
        raise PolicyError(f"{path}:{where}: output must be one of {', '.join(OUTPUT_ACTIONS)}")
    roles, keys = _overrides(path, top["overrides"][1]) if "overrides" in top else ({}, {})
    terms = _terms(path, top["dictionaries"][1]) if "dictionaries" in top else []
    return PrivacyPolicy(actions, restore, str(output), roles, keys, Dictionary(terms))


def _terms(path: Path, node: yaml.Node) -> list[str]:
    terms = []
    for name, (_, items) in _mapping(path, node, "dictionaries").items():
        if not isinstance(items, yaml.SequenceNode) or not all(
            isinstance(item, yaml.ScalarNode) and str(item.value).strip() for item in items.value
        ):
            raise PolicyError(
                f"{path}:{_line(items)}: dictionaries.{name} must be a list of non-empty terms"
            )
        terms += [str(item.value) for item in items.value]
    return terms


def _overrides(
    path: Path, node: yaml.Node
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    groups = _mapping(path, node, "overrides")
    unknown = set(groups) - {"roles", "keys"}
    if unknown:
        name = sorted(unknown)[0]
        raise PolicyError(f"{path}:{_line(groups[name][0])}: overrides: unknown group {name!r}")
    found: dict[str, dict[str, dict[str, str]]] = {"roles": {}, "keys": {}}
    for group, (_, value) in groups.items():
        for who, (_, actions) in _mapping(path, value, f"overrides.{group}").items():
            found[group][who] = _actions(path, actions)
    return found["roles"], found["keys"]


def _actions(path: Path, node: yaml.Node) -> dict[str, str]:
    actions = {}
    for name, (key_node, value_node) in _mapping(path, node, "actions").items():
        if name not in TYPES:
            raise PolicyError(
                f"{path}:{_line(key_node)}: unknown type {name!r} (known: {', '.join(TYPES)})"
            )
        action = policyfile.value(value_node)
        if action not in ACTIONS:
            raise PolicyError(
                f"{path}:{_line(value_node)}: {name}: unknown action {action!r} "
                f"(one of {', '.join(ACTIONS)})"
            )
        actions[name] = str(action)
    return actions


def _mapping(path: Path, node: Any, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        line = _line(node) if isinstance(node, yaml.Node) else 1
        raise PolicyError(f"{path}:{line}: {what} must be a mapping")
    return {str(k.value): (k, v) for k, v in node.value}

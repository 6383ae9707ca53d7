"""``policies/desensitization.yaml``: what to do with each type of personal data.

Validated once at load; an error names the file and the line. Shape::

    actions:            # per type; a type not listed is masked
      CN_PHONE: pseudonymize
      US_SSN: redact
    restore: true       # placeholders in answers are restored for the caller
    output: mask        # personal data the model wrote itself: mask | flag | allow
    dictionaries:       # CUSTOM terms, by list name
      codenames: [Project Falcon, 天穹计划]
    min_score: 0.5      # findings scored under this are not acted on
    context:            # a keyword within `window` characters raises or lowers a score
      - types: [BANK_CARD, CN_RESIDENT_ID]
        keywords: [订单号, order no]
        window: 12
        adjust: -0.6
        direction: before # before | after | both (default): where the keyword stands
    conversation_ttl: 86400  # seconds a conversation's pseudonyms are kept (encrypted)
    audit_content: none # what API audit events keep: none | desensitized | encrypted
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
from appliance.privacy.context import ContextRule, ContextRules
from appliance.privacy.detectors import TYPES, Finding
from appliance.privacy.dictionary import Dictionary
from appliance.privacy.findings import find

ACTIONS = ("allow", "mask", "redact", "hash", "pseudonymize", "block")
OUTPUT_ACTIONS = ("mask", "flag", "allow")
DEFAULT_ACTION = "mask"
FIELDS = (
    "actions",
    "restore",
    "output",
    "overrides",
    "dictionaries",
    "min_score",
    "context",
    "conversation_ttl",
    "audit_content",
)
AUDIT_CONTENT = ("none", "desensitized", "encrypted")
MAX_CONTEXT_WINDOW = 64
DIRECTIONS = ("before", "after", "both")


@dataclass(frozen=True)
class PrivacyPolicy:
    actions: Mapping[str, str]
    restore: bool = True
    output: str = "mask"
    role_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    key_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    dictionary: Dictionary = field(default_factory=lambda: Dictionary([]))
    context: ContextRules = field(default_factory=ContextRules)
    conversation_ttl: int = 86400
    audit_content: str = "none"  # what API audit events keep of prompts and answers

    def find(self, text: str, *, entities: bool = True) -> list[Finding]:
        """Every finding the policy acts on: detectors, dictionary terms, context rules.
        Without ``entities``, identifiers only (no names, no addresses): what the answer's
        output scan looks for."""
        custom = self.dictionary.find(text) if self.dictionary else None
        found = find(text, custom, weak=bool(self.context), entities=entities)
        if not found:
            return found
        if self.context:
            return self.context.apply(text, found)
        return [f for f in found if f.score >= self.context.min_score]

    def find_identifiers(self, text: str) -> list[Finding]:
        return self.find(text, entities=False)

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
    unknown = set(top) - set(FIELDS)
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
    min_score = _number(path, top["min_score"][1], "min_score", 0, 1) if "min_score" in top else 0.5
    rules = _context(path, top["context"][1]) if "context" in top else []
    ttl = 86400
    if "conversation_ttl" in top:
        ttl = int(_number(path, top["conversation_ttl"][1], "conversation_ttl", 0, 30 * 86400))
    content = policyfile.value(top["audit_content"][1]) if "audit_content" in top else "none"
    if content not in AUDIT_CONTENT:
        where = _line(top["audit_content"][1])
        raise PolicyError(
            f"{path}:{where}: audit_content must be one of {', '.join(AUDIT_CONTENT)}"
        )
    return PrivacyPolicy(
        actions,
        restore,
        str(output),
        roles,
        keys,
        Dictionary(terms),
        ContextRules(rules, min_score),
        ttl,
        str(content),
    )


def _context(path: Path, node: yaml.Node) -> list[ContextRule]:
    if not isinstance(node, yaml.SequenceNode):
        raise PolicyError(f"{path}:{_line(node)}: context must be a list of rules")
    return [_context_rule(path, item) for item in node.value]


def _context_rule(path: Path, node: yaml.Node) -> ContextRule:
    fields = _mapping(path, node, "a context rule")
    where = f"{path}:{_line(node)}"
    missing = {"types", "keywords", "window", "adjust"} - set(fields)
    if missing:
        raise PolicyError(f"{where}: a context rule needs {', '.join(sorted(missing))}")
    unknown = set(fields) - {"types", "keywords", "window", "adjust", "direction"}
    if unknown:
        name = sorted(unknown)[0]
        raise PolicyError(f"{path}:{_line(fields[name][0])}: context: unknown field {name!r}")
    types = _strings(path, fields["types"][1], "context types")
    for name in types:
        if name not in TYPES:
            raise PolicyError(f"{path}:{_line(fields['types'][1])}: unknown type {name!r}")
    keywords = _strings(path, fields["keywords"][1], "context keywords")
    window = _number(path, fields["window"][1], "window", 1, MAX_CONTEXT_WINDOW)
    if window != int(window):
        raise PolicyError(f"{path}:{_line(fields['window'][1])}: window must be a whole number")
    adjust = _number(path, fields["adjust"][1], "adjust", -1, 1)
    direction = policyfile.value(fields["direction"][1]) if "direction" in fields else "both"
    if direction not in DIRECTIONS:
        raise PolicyError(
            f"{path}:{_line(fields['direction'][1])}: direction must be one of "
            f"{', '.join(DIRECTIONS)}"
        )
    return ContextRule(
        frozenset(types),
        tuple(k.lower() for k in keywords),
        int(window),
        float(adjust),
        str(direction),
    )


def _strings(path: Path, node: yaml.Node, what: str) -> list[str]:
    items = policyfile.value(node)
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(i, str) and i.strip() for i in items)
    ):
        raise PolicyError(f"{path}:{_line(node)}: {what} must be a list of non-empty strings")
    return [i.strip() for i in items]


def _number(path: Path, node: yaml.Node, what: str, low: float, high: float) -> float:
    number = policyfile.value(node)
    if isinstance(number, bool) or not isinstance(number, int | float) or not low <= number <= high:
        raise PolicyError(f"{path}:{_line(node)}: {what} must be a number from {low} to {high}")
    return float(number)


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

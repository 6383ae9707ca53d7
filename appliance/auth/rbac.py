"""Role-based access control: a typed permission vocabulary and the policy that grants it."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from appliance import policyfile
from appliance.errors import PolicyError
from appliance.policyfile import line as _line


class Permission(StrEnum):
    PORTAL_DASHBOARD_READ = "portal:dashboard:read"
    ADMIN_USERS_READ = "admin:users:read"
    ADMIN_USERS_WRITE = "admin:users:write"
    ADMIN_KEYS_READ = "admin:keys:read"
    ADMIN_KEYS_WRITE = "admin:keys:write"
    ADMIN_SETTINGS_READ = "admin:settings:read"
    ADMIN_SETTINGS_WRITE = "admin:settings:write"
    ADMIN_POLICIES_READ = "admin:policies:read"
    ADMIN_POLICIES_WRITE = "admin:policies:write"
    ADMIN_MODELS_READ = "admin:models:read"
    ADMIN_MODELS_WRITE = "admin:models:write"
    ADMIN_FINETUNE_READ = "admin:finetune:read"
    ADMIN_FINETUNE_WRITE = "admin:finetune:write"
    KEYS_OWN_READ = "keys:own:read"
    KEYS_OWN_WRITE = "keys:own:write"
    AUDIT_READ = "audit:read"
    AUDIT_EXPORT = "audit:export"
    API_MODEL_INVOKE = "api:model:invoke"  # chat, completions, embeddings
    # The other endpoint families vLLM serves, each granted on its own (issue 19).
    API_RESPONSES_INVOKE = "api:responses:invoke"  # /v1/responses
    API_TOKENIZE_INVOKE = "api:tokenize:invoke"  # /tokenize, /detokenize
    API_SCORE_INVOKE = "api:score:invoke"  # /score, /v1/score
    API_RERANK_INVOKE = "api:rerank:invoke"  # /rerank, /v1/rerank, /v2/rerank
    API_POOLING_INVOKE = "api:pooling:invoke"  # /pooling
    API_CLASSIFY_INVOKE = "api:classify:invoke"  # /classify
    # Audio reaches the model as sent: it cannot be desensitized, so it is granted apart.
    API_AUDIO_INVOKE = "api:audio:invoke"  # /v1/audio/transcriptions, /v1/audio/translations
    # The content policy as a service (issue 20): no model is called.
    API_MODERATIONS_INVOKE = "api:moderations:invoke"  # /v1/moderations


# Each permits calling models through one family of endpoints (still within the role's
# model globs and the key's scope): a caller holding any of them may list its models.
API_INVOKE_PERMISSIONS = (
    Permission.API_MODEL_INVOKE,
    Permission.API_RESPONSES_INVOKE,
    Permission.API_TOKENIZE_INVOKE,
    Permission.API_SCORE_INVOKE,
    Permission.API_RERANK_INVOKE,
    Permission.API_POOLING_INVOKE,
    Permission.API_CLASSIFY_INVOKE,
    Permission.API_AUDIO_INVOKE,
)


LIMIT_NAMES = ("requests_per_minute", "tokens_per_day", "max_tokens", "max_context")
# A budget shared by every caller holding the role, on top of each caller's own limits.
SHARED_LIMIT_NAMES = ("shared_requests_per_minute",)


@dataclass(frozen=True)
class RoleLimits:
    """API limits of a role; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    max_tokens: int | None = None
    max_context: int | None = None
    shared_requests_per_minute: int | None = None

    @staticmethod
    def most_generous(limits: list[RoleLimits]) -> RoleLimits:
        """A principal with several roles gets, per limit, the most generous of them."""
        if not limits:
            return RoleLimits()
        merged = {}
        for name in LIMIT_NAMES:
            values = [getattr(limit, name) for limit in limits]
            merged[name] = None if None in values else max(values)
        return RoleLimits(**merged)


@dataclass(frozen=True)
class RoleGrant:
    name: str
    description: str
    permissions: frozenset[Permission]
    models: tuple[str, ...] = field(default_factory=tuple)
    limits: RoleLimits = field(default_factory=RoleLimits)
    totp_required: bool = False  # local accounts holding the role sign in with TOTP


@dataclass(frozen=True)
class SsoMapping:
    """Which roles an SSO user gets from one claim of its ID token (e.g. ``groups``).

    A group listed under ``roles`` grants the roles it maps to; a group named exactly
    like a role grants that role. No role at all means no access (and deactivation).
    """

    claim: str = "groups"
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def groups_in(self, claims: dict[str, Any]) -> list[str]:
        """The claim's groups: a list of strings, or one space-separated string."""
        value: Any = claims.get(self.claim)
        if value is None and "." in self.claim:
            value = claims
            for part in self.claim.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
        return []

    def roles_for(self, groups: list[str], known_roles: set[str] | frozenset[str]) -> list[str]:
        granted = {role for group in groups for role in self.roles.get(group, ())}
        granted |= known_roles.intersection(groups)
        return sorted(granted)


@dataclass(frozen=True)
class RbacPolicy:
    roles: dict[str, RoleGrant]
    sso: SsoMapping = field(default_factory=SsoMapping)

    def totp_required(self, role_names: list[str]) -> bool:
        return any(self.roles[name].totp_required for name in role_names if name in self.roles)

    def sso_roles(self, claims: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(groups found in the claims, roles they grant)."""
        groups = self.sso.groups_in(claims)
        return groups, self.sso.roles_for(groups, frozenset(self.roles))

    def permissions_of(self, role_names: list[str]) -> frozenset[Permission]:
        granted: set[Permission] = set()
        for name in role_names:
            if name in self.roles:
                granted |= self.roles[name].permissions
        return frozenset(granted)

    def allows(self, role_names: list[str], permission: Permission) -> bool:
        return permission in self.permissions_of(role_names)

    def limits_of(self, role_names: list[str]) -> RoleLimits:
        return RoleLimits.most_generous(
            [self.roles[name].limits for name in role_names if name in self.roles]
        )

    def shared_rpm_of(self, role_names: list[str]) -> dict[str, int | None]:
        """Each role's requests-per-minute budget shared by all of its callers."""
        return {
            name: self.roles[name].limits.shared_requests_per_minute
            for name in role_names
            if name in self.roles
        }

    def allows_model(self, role_names: list[str], model_name: str) -> bool:
        return any(
            fnmatch.fnmatchcase(model_name, glob)
            for name in role_names
            if name in self.roles
            for glob in self.roles[name].models
        )


def load_rbac(path: Path) -> RbacPolicy:
    """Load and validate the policy, or raise PolicyError naming the file and line."""
    root = policyfile.compose(path, "RBAC policy file")
    roles_node = _mapping_get(path, root, "roles")
    for key_node, _ in _mapping_items(path, root):
        if key_node.value not in {"roles", "sso"}:
            raise PolicyError(f"{path}:{_line(key_node)}: unknown top-level key {key_node.value!r}")
    roles = {}
    for key_node, role_node in _mapping_items(path, roles_node):
        role = _parse_role(path, key_node.value, role_node)
        roles[role.name] = role
    if not roles:
        raise PolicyError(f"{path}: no roles defined")
    sso_node = next((v for k, v in _mapping_items(path, root) if k.value == "sso"), None)
    return RbacPolicy(roles=roles, sso=_parse_sso(path, sso_node, set(roles)))


# Separation of duties: whoever may change policies must not also hold audit permissions
# (and no permission exists to alter or delete audit events).
POLICY_CHANGE = Permission.ADMIN_POLICIES_WRITE
AUDIT_PREFIX = "audit:"


def _parse_sso(path: Path, node: yaml.Node | None, role_names: set[str]) -> SsoMapping:
    if node is None:
        return SsoMapping()
    fields = dict((k.value, (k, v)) for k, v in _mapping_items(path, node))
    unknown = set(fields) - {"claim", "roles"}
    if unknown:
        key = fields[sorted(unknown)[0]][0]
        raise PolicyError(f"{path}:{_line(key)}: sso: unknown field {key.value!r}")
    claim = "groups"
    if "claim" in fields:
        value = policyfile.value(fields["claim"][1])
        if not isinstance(value, str) or not value:
            raise PolicyError(f"{path}:{_line(fields['claim'][1])}: sso: claim must be a name")
        claim = value
    mapping: dict[str, tuple[str, ...]] = {}
    if "roles" in fields:
        for group_node, roles_node in _mapping_items(path, fields["roles"][1]):
            granted = []
            for item in _sequence(path, roles_node, f"sso group {group_node.value!r}"):
                if item.value not in role_names:
                    raise PolicyError(
                        f"{path}:{_line(item)}: sso group {group_node.value!r}: "
                        f"unknown role {item.value!r}"
                    )
                granted.append(str(item.value))
            mapping[str(group_node.value)] = tuple(granted)
    return SsoMapping(claim=claim, roles=mapping)


def _parse_role(path: Path, name: str, node: yaml.Node) -> RoleGrant:
    fields = dict((k.value, v) for k, v in _mapping_items(path, node))
    unknown = set(fields) - {"description", "permissions", "models", "limits", "totp_required"}
    if unknown:
        raise PolicyError(
            f"{path}:{_line(node)}: role {name!r}: unknown field {sorted(unknown)[0]!r}"
        )
    permissions: set[Permission] = set()
    for item in _sequence(path, fields.get("permissions"), f"role {name!r} permissions"):
        permissions |= _expand(path, name, item)
    models = tuple(
        str(item.value) for item in _sequence(path, fields.get("models"), f"role {name!r} models")
    )
    description = fields["description"].value if "description" in fields else ""
    limits = _parse_limits(path, name, fields.get("limits"))
    if POLICY_CHANGE in permissions and any(p.startswith(AUDIT_PREFIX) for p in permissions):
        raise PolicyError(
            f"{path}:{_line(node)}: role {name!r}: separation of duties: a role that changes "
            "policies must not hold audit permissions"
        )
    totp_required = False
    if "totp_required" in fields:
        flag = policyfile.value(fields["totp_required"])
        if not isinstance(flag, bool):
            raise PolicyError(
                f"{path}:{_line(fields['totp_required'])}: role {name!r}: "
                "totp_required must be true or false"
            )
        totp_required = flag
    return RoleGrant(name, str(description), frozenset(permissions), models, limits, totp_required)


def _parse_limits(path: Path, role: str, node: yaml.Node | None) -> RoleLimits:
    if node is None:
        return RoleLimits()
    values: dict[str, int | None] = {}
    for key_node, value_node in _mapping_items(path, node):
        where = f"{path}:{_line(key_node)}: role {role!r} limits"
        if key_node.value not in LIMIT_NAMES + SHARED_LIMIT_NAMES:
            raise PolicyError(f"{where}: unknown limit {key_node.value!r}")
        value = policyfile.value(value_node)
        if value is not None and (type(value) is not int or value < 1):
            raise PolicyError(f"{where}: {key_node.value} must be a positive integer or null")
        values[key_node.value] = value
    return RoleLimits(**values)


def _expand(path: Path, role: str, node: yaml.Node) -> set[Permission]:
    value = str(node.value)
    if value.endswith(":*"):
        matched = {p for p in Permission if p.value.startswith(value[:-1])}
    else:
        matched = {Permission(value)} if value in Permission._value2member_map_ else set()
    if not matched:
        raise PolicyError(f"{path}:{_line(node)}: role {role!r}: unknown permission {value!r}")
    return matched


def _mapping_items(path: Path, node: Any) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        line = _line(node) if isinstance(node, yaml.Node) else 1
        raise PolicyError(f"{path}:{line}: expected a mapping")
    return node.value


def _mapping_get(path: Path, node: Any, key: str) -> yaml.Node:
    for key_node, value in _mapping_items(path, node):
        if key_node.value == key:
            return value
    raise PolicyError(f"{path}:1: missing top-level key {key!r}")


def _sequence(path: Path, node: yaml.Node | None, what: str) -> list[yaml.Node]:
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise PolicyError(f"{path}:{_line(node)}: {what} must be a list")
    return node.value

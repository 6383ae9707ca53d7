"""The RBAC policy: the shipped file is valid, and invalid files are refused by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.auth.rbac import Permission, RoleLimits, load_rbac
from appliance.config import SHIPPED_POLICIES
from appliance.errors import PolicyError


def test_shipped_policy_is_valid_and_separates_duties() -> None:
    policy = load_rbac(SHIPPED_POLICIES / "rbac.yaml")
    assert set(policy.roles) == {"admin", "operator", "auditor", "developer", "app"}
    for role in policy.roles.values():
        changes_policies = Permission.ADMIN_POLICIES_WRITE in role.permissions
        touches_audit = {Permission.AUDIT_READ, Permission.AUDIT_EXPORT} & role.permissions
        assert not (changes_policies and touches_audit), role.name
    assert policy.allows(["developer"], Permission.API_MODEL_INVOKE)
    assert not policy.allows(["auditor"], Permission.API_MODEL_INVOKE)
    assert policy.allows_model(["app"], "deepseek-r1")
    assert policy.limits_of(["developer"]).requests_per_minute == 60


def test_limits_merge_to_the_most_generous() -> None:
    policy = load_rbac(SHIPPED_POLICIES / "rbac.yaml")
    merged = policy.limits_of(["developer", "app"])
    assert merged.requests_per_minute == 600 and merged.max_tokens == 8192
    assert policy.limits_of(["developer", "admin"]) == RoleLimits()  # admin is unlimited
    assert policy.limits_of([]) == RoleLimits()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roles:\n  a:\n    permissions: [api:model:fly]\n", ":3: role 'a': unknown permission"),
        ("roles:\n  a:\n    colour: red\n", ":3: role 'a': unknown field 'colour'"),
        ("roles:\n  a:\n    limits:\n      rpm: 5\n", ":4: role 'a' limits: unknown limit 'rpm'"),
        ("roles:\n  a:\n    limits:\n      max_tokens: -1\n", ":4: role 'a' limits: max_tokens"),
        ("roles:\n  a:\n    limits:\n      max_tokens: ten\n", ":4: role 'a' limits: max_tokens"),
        (
            "roles:\n  a:\n    permissions: api:model:invoke\n",
            ":3: role 'a' permissions must be a list",
        ),
        ("roles: [\n", "not valid YAML"),
        ("rolez: {}\n", "missing top-level key 'roles'"),
    ],
)
def test_invalid_policies_are_refused_naming_the_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as raised:
        load_rbac(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)

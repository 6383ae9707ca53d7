"""The RBAC policy: the shipped file is valid, invalid files are refused by line, and
every route of both apps answers every role exactly as the policy says (the matrix)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from appliance.api.app import create_app as create_api
from appliance.auth import access
from appliance.auth.api_keys import create_api_key
from appliance.auth.oidc_bearer import OidcVerifier
from appliance.auth.rbac import Permission, RbacPolicy, RoleLimits, load_rbac
from appliance.auth.users import create_user
from appliance.config import SHIPPED_POLICIES
from appliance.errors import PolicyError
from appliance.portal.app import create_app as create_portal
from appliance.services import Services
from tests.conftest import unique


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


# Separation of duties ----------------------------------------------------------------


def test_no_permission_alters_or_deletes_audit_data() -> None:
    audit = {p for p in Permission if p.value.startswith("audit:")}
    assert audit == {Permission.AUDIT_READ, Permission.AUDIT_EXPORT}


def test_a_role_that_changes_policies_and_reads_audit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text("roles:\n  boss:\n    permissions: [admin:policies:*, audit:read]\n")
    with pytest.raises(PolicyError, match=":3: role 'boss': separation of duties"):
        load_rbac(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roles:\n  a: {}\nsso:\n  roles:\n    g: [wizard]\n", ":5: sso group 'g': unknown role"),
        ("roles:\n  a: {}\nsso:\n  colour: red\n", ":4: sso: unknown field 'colour'"),
        ("roles:\n  a: {}\nsso:\n  claim: 3\n", ":4: sso: claim must be a name"),
        ("roles:\n  a:\n    totp_required: sometimes\n", ":3: role 'a': totp_required"),
        ("roles:\n  a: {}\nextra: 1\n", ":3: unknown top-level key 'extra'"),
    ],
)
def test_invalid_sso_and_totp_entries_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message):
        load_rbac(path)


def test_sso_groups_map_to_roles() -> None:
    policy = load_rbac(SHIPPED_POLICIES / "rbac.yaml")
    assert policy.sso.claim == "groups"
    assert policy.sso_roles({"groups": ["compliance", "other"]}) == (
        ["compliance", "other"],
        ["auditor"],
    )
    assert policy.sso_roles({"groups": "developer appliance-admins"})[1] == ["admin", "developer"]
    assert policy.sso_roles({"groups": [1, None]}) == ([], [])
    assert policy.sso_roles({}) == ([], [])
    assert policy.totp_required(["admin"]) and not policy.totp_required(["operator"])


def test_api_tokens_of_the_enterprise_idp_use_the_same_group_mapping(
    pg_services: Services,
) -> None:
    settings = pg_services.settings.model_copy(
        update={"oidc_issuer": "https://idp.example", "oidc_audience": "appliance"}
    )
    policy = load_rbac(SHIPPED_POLICIES / "rbac.yaml")
    verifier = OidcVerifier.from_settings(
        settings, frozenset(policy.roles), group_roles=policy.sso.roles
    )
    assert verifier is not None
    claims = {"sub": "s", "groups": ["compliance", "developer", "nobody"]}
    assert verifier.principal(claims).roles == ("auditor", "developer")


# The matrix: every route of both apps, as every role -------------------------------

NO_ROLE = "(no role)"
ROLE_SETS = {name: [name] for name in sorted(load_rbac(SHIPPED_POLICIES / "rbac.yaml").roles)}
ROLE_SETS[NO_ROLE] = []
_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")


def concrete_path(rule: Rule) -> str:
    """The rule's path with every argument filled (ids that exist nowhere)."""

    def fill(match: re.Match[str]) -> str:
        converter, args = match.group("converter"), match.group("args")
        if converter == "int":
            return "987654321"
        if converter == "any":
            return str(args).split(",")[0].strip().strip("'\"")
        return "no-such-thing"

    return _ARGUMENT.sub(fill, rule.rule)


def route_calls(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) of every route except static files."""
    return sorted(
        (rule.endpoint, method, concrete_path(rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    )


def expected_allowed(app: Flask, policy: RbacPolicy, endpoint: str, roles: list[str]) -> bool:
    declared = access.endpoint_access(app, endpoint)
    assert declared is not None, f"{endpoint} declares no access"
    return access.allows(policy, roles, declared)


def test_every_route_of_both_apps_declares_its_access(pg_services: Services) -> None:
    portal = create_portal(services=pg_services)
    api = create_api(services=pg_services)
    try:
        assert access.undeclared_routes(portal) == []
        assert access.undeclared_routes(api) == []
    finally:
        api.extensions["appliance"].close()


def test_a_route_that_declares_nothing_stops_the_factory() -> None:
    app = Flask(__name__)
    app.add_url_rule("/a", "a", access.public(lambda: "a"))
    app.add_url_rule("/b", "b", lambda: "b")
    with pytest.raises(RuntimeError, match=r"declare no access: \['b'\]"):
        access.check_declared(app)
    app.view_functions["b"] = access.require(Permission.API_MODEL_INVOKE)(lambda: "b")
    access.check_declared(app)


@pytest.fixture(scope="module")
def role_users(pg_services: Services) -> dict[str, tuple[int, str]]:
    """One user per role set, with an API key: {role set: (user id, key)}."""
    users = {}
    with pg_services.db.session() as session:
        for label, roles in ROLE_SETS.items():
            user, _ = create_user(session, unique("matrix"), roles)
            users[label] = (user.id, create_api_key(session, user, "matrix").plaintext)
    return users


def portal_client(app: Flask, user_id: int) -> FlaskClient:
    from tests.portal.helpers import forge_session

    client = app.test_client()
    # "idp": the second factor counts as done (these accounts enrol no authenticator).
    forge_session(client, app.extensions["appliance"], user_id, mfa="idp")
    return client


def test_portal_matrix(pg_services: Services, role_users: dict[str, tuple[int, str]]) -> None:
    """Every portal route by every role: 403 exactly where the policy denies, else served."""
    app = create_portal(services=pg_services)
    policy = pg_services.rbac
    calls = route_calls(app)
    assert len(calls) > 25
    mismatches = []
    for label, roles in ROLE_SETS.items():
        client = portal_client(app, role_users[label][0])
        for endpoint, method, path in calls:
            response = client.open(path, method=method)
            allowed = expected_allowed(app, policy, endpoint, roles)
            to_login = response.status_code == 302 and response.headers["Location"].startswith(
                "/login"
            )
            refused = response.status_code == 403
            public = access.endpoint_access(app, endpoint) is access.PUBLIC
            if refused == allowed or (to_login and not public):
                mismatches.append((label, method, path, response.status_code))
    assert mismatches == []


def test_api_matrix(pg_services: Services, role_users: dict[str, tuple[int, str]]) -> None:
    """Every API route by every role: 403 exactly where the policy denies."""
    app = create_api(services=pg_services)
    policy = pg_services.rbac
    mismatches = []
    try:
        client = app.test_client()
        for label, roles in ROLE_SETS.items():
            auth = {"Authorization": f"Bearer {role_users[label][1]}"}
            for endpoint, method, path in route_calls(app):
                response = client.open(path, method=method, headers=auth, json={})
                allowed = expected_allowed(app, policy, endpoint, roles)
                if (response.status_code == 403) == allowed or response.status_code == 401:
                    mismatches.append((label, method, path, response.status_code))
            # Without a key, only the public endpoints answer.
            for endpoint, method, path in route_calls(app):
                response = client.open(path, method=method, json={})
                public = access.endpoint_access(app, endpoint) is access.PUBLIC
                if public == (response.status_code == 401):
                    mismatches.append(("(no key)", method, path, response.status_code))
    finally:
        app.extensions["appliance"].close()
    assert mismatches == []

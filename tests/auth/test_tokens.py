"""Local access tokens: issue, verify, and authenticate_bearer's dispatch (no HTTP)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from appliance.auth.api_keys import revoke_api_key
from appliance.auth.bearer import BearerVerifiers, authenticate_bearer
from appliance.auth.principal import Principal
from appliance.auth.tokens import (
    AUDIENCE,
    ISSUER,
    LEEWAY_S,
    SIGNING_KEY_PURPOSE,
    KeyStateCache,
    LocalTokens,
)
from appliance.auth.users import get_user
from appliance.errors import AuthenticationFailed
from appliance.models import ApiKey
from appliance.services import Services
from tests.auth import Client, new_client


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def verifiers(pg_services: Services, clock: Clock) -> BearerVerifiers:
    return pg_services.bearer_verifiers(clock=clock, key_state_ttl_s=0)


@pytest.fixture()
def client(pg_services: Services) -> Client:
    return new_client(pg_services, role="app", models="tiny-*")


def issue(services: Services, verifiers: BearerVerifiers, client: Client) -> str:
    with services.db.session() as session:
        key = session.get(ApiKey, client.key_id)
        assert key is not None
        return verifiers.local.issue(key).access_token


def authenticate(services: Services, verifiers: BearerVerifiers, token: str) -> Principal:
    return authenticate_bearer(token, services.db, verifiers)


def refused(services: Services, verifiers: BearerVerifiers, token: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        authenticate(services, verifiers, token)
    assert info.value.status == 401
    return info.value


def signed(services: Services, claims: dict, header: dict | None = None) -> str:
    """A token signed with the appliance's real key but with claims of the test's choosing."""
    secret = services.derived_key(SIGNING_KEY_PURPOSE)
    kid = LocalTokens(secret, 900).kid
    return jwt.encode(
        {"alg": "HS256", "kid": kid, **(header or {})}, claims, OctKey.import_key(secret)
    )


def valid_claims(client: Client, **overrides: object) -> dict:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": client.username,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 900,
        "jti": "j",
        "key_id": client.key_id,
    }
    claims.update(overrides)
    return claims


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_issued_token_carries_the_documented_claims(
    pg_services: Services, verifiers: BearerVerifiers, client: Client, clock: Clock
) -> None:
    token = issue(pg_services, verifiers, client)
    header, payload, _ = token.split(".")
    head = json.loads(base64.urlsafe_b64decode(header + "=="))
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert head == {"typ": "JWT", "alg": "HS256", "kid": verifiers.local.kid}
    assert claims["iss"] == "appliance" and claims["aud"] == "appliance-api"
    assert claims["sub"] == client.username and claims["key_id"] == client.key_id
    assert claims["exp"] - claims["iat"] == pg_services.settings.jwt_ttl_s == 900
    assert claims["iat"] == int(clock.now) and len(claims["jti"]) == 32
    assert "roles" not in claims and client.key not in token


def test_token_authenticates_as_its_key(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    principal = authenticate(pg_services, verifiers, issue(pg_services, verifiers, client))
    assert principal.name == client.username
    assert principal.roles == ("app",)
    assert (principal.key_id, principal.key_prefix, principal.key_models) == (
        client.key_id,
        client.prefix,
        "tiny-*",
    )


def test_api_keys_still_work_through_the_same_entry_point(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    principal = authenticate(pg_services, verifiers, client.key)
    assert (principal.name, principal.key_id) == (client.username, client.key_id)
    assert refused(pg_services, verifiers, client.key[:-4] + "abcd").code == "invalid_api_key"


def test_roles_and_scope_come_from_the_database_not_the_token(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    token = signed(pg_services, valid_claims(client, roles=["admin"], key_models="*"))
    principal = authenticate(pg_services, verifiers, token)
    assert principal.roles == ("app",) and principal.key_models == "tiny-*"


def test_expired_token_is_refused(
    pg_services: Services, verifiers: BearerVerifiers, client: Client, clock: Clock
) -> None:
    token = issue(pg_services, verifiers, client)
    clock.now += 900 + LEEWAY_S - 1
    authenticate(pg_services, verifiers, token)
    clock.now += 2
    error = refused(pg_services, verifiers, token)
    assert error.code == "expired_token" and error.message == "The access token has expired."


def test_token_never_outlives_its_key(pg_services: Services, clock: Clock) -> None:
    client = new_client(pg_services, expires_days=1)
    verifiers = pg_services.bearer_verifiers(clock=clock, key_state_ttl_s=0)
    with pg_services.db.session() as session:
        key = session.get(ApiKey, client.key_id)
        assert key is not None and key.expires_at is not None
        clock.now = key.expires_at.timestamp() - 60
        issued = verifiers.local.issue(key)
    assert issued.expires_in == 60
    clock.now += 59
    authenticate(pg_services, verifiers, issued.access_token)
    clock.now += 1
    assert refused(pg_services, verifiers, issued.access_token).code == "expired_api_key"


def test_revoking_the_key_revokes_its_tokens(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    token = issue(pg_services, verifiers, client)
    authenticate(pg_services, verifiers, token)
    with pg_services.db.session() as session:
        revoke_api_key(session, client.prefix)
    error = refused(pg_services, verifiers, token)
    assert error.code == "revoked_api_key"
    assert error.message == "The API key of this access token has been revoked."


def test_key_state_is_cached_for_at_most_the_ttl(pg_services: Services, client: Client) -> None:
    monotonic = Clock(1000.0)
    verifiers = pg_services.bearer_verifiers()
    verifiers.key_states = KeyStateCache(0.5, clock=monotonic)
    token = issue(pg_services, verifiers, client)
    authenticate(pg_services, verifiers, token)
    with pg_services.db.session() as session:
        revoke_api_key(session, client.prefix)
    monotonic.now += 0.4
    authenticate(pg_services, verifiers, token)  # still cached: within the bound
    monotonic.now += 0.1
    assert refused(pg_services, verifiers, token).code == "revoked_api_key"
    with pytest.raises(ValueError, match=r"between 0 and 1\.0"):
        KeyStateCache(1.5)


def test_disabled_account_refuses_its_tokens(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    token = issue(pg_services, verifiers, client)
    with pg_services.db.session() as session:
        get_user(session, client.username).is_active = False
    assert refused(pg_services, verifiers, token).code == "account_disabled"


def test_tampered_token_is_refused(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    other = new_client(pg_services, role="admin")
    header, payload, signature = issue(pg_services, verifiers, client).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["key_id"] = other.key_id
    forged = f"{header}.{b64(claims)}.{signature}"
    error = refused(pg_services, verifiers, forged)
    assert (error.code, error.message) == (
        "invalid_token",
        "The access token's signature is invalid.",
    )


def test_alg_none_is_refused(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    header = {"alg": "none", "kid": verifiers.local.kid, "typ": "JWT"}
    token = f"{b64(header)}.{b64(valid_claims(client))}."
    error = refused(pg_services, verifiers, token)
    assert error.message == "The access token's signing algorithm is not accepted."


def test_wrong_audience_is_refused(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    error = refused(pg_services, verifiers, signed(pg_services, valid_claims(client, aud="other")))
    assert error.message == "The access token is not intended for this API (audience)."
    authenticate(pg_services, verifiers, signed(pg_services, valid_claims(client, aud=[AUDIENCE])))


def test_token_without_key_id_or_with_a_bad_one_is_refused(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    claims = valid_claims(client)
    del claims["key_id"]
    assert refused(pg_services, verifiers, signed(pg_services, claims)).code == "invalid_token"
    for bad in ("1", True, 2**62):
        token = signed(pg_services, valid_claims(client, key_id=bad))
        assert refused(pg_services, verifiers, token).code == "invalid_token"


def test_token_from_another_appliance_is_refused(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    foreign = LocalTokens(b"x" * 32, 900)
    with pg_services.db.session() as session:
        key = session.get(ApiKey, client.key_id)
        assert key is not None
        token = foreign.issue(key).access_token
    error = refused(pg_services, verifiers, token)
    assert error.message == "The access token was signed with a key this appliance lacks."


@pytest.mark.parametrize(
    "token",
    [
        "",
        "Bearer",
        "abc",
        "a.b.c",
        "a.b.c.d.e",
        "...",
        f"{b64({'alg': 'HS256'})}.e30.x" + "y" * 20000,
    ],
)
def test_garbage_is_refused(pg_services: Services, verifiers: BearerVerifiers, token: str) -> None:
    refused(pg_services, verifiers, token)


def test_jwt_of_an_unknown_issuer_is_refused(
    pg_services: Services, verifiers: BearerVerifiers, client: Client
) -> None:
    secret = b"y" * 32
    token = jwt.encode(
        {"alg": "HS256"},
        valid_claims(client, iss="https://idp.example.com"),
        OctKey.import_key(secret),
    )
    error = refused(pg_services, verifiers, token)
    assert error.message == "The access token was issued by an issuer this API does not accept."

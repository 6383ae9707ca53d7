"""Enterprise IdP access tokens, checked against a stand-in IdP's discovery document and JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from appliance.auth.bearer import authenticate_bearer
from appliance.auth.oidc_bearer import JwksCache, OidcVerifier
from appliance.auth.principal import Principal
from appliance.config import Settings
from appliance.errors import AuthenticationFailed, ConfigError, UpstreamUnavailable
from appliance.services import Services
from tests import timing
from tests.auth import gateway_app
from tests.conftest import LiveServer, free_port

AUDIENCE = "appliance-gateway"


def _pem(private: Any) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def rsa_key() -> RSAKey:
    return RSAKey.import_key(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))


def ec_key() -> ECKey:
    return ECKey.import_key(_pem(ec.generate_private_key(ec.SECP256R1())))


class StandInIdp:
    """A tiny OIDC provider: discovery, JWKS (rotatable) and token signing."""

    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}
        self.hits: Counter[str] = Counter()
        app = Flask(__name__)

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            self.hits["discovery"] += 1
            return {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"}

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            self.hits["jwks"] += 1
            return {
                "keys": [
                    {**key.as_dict(private=False), "kid": kid, "use": "sig"}
                    for kid, key in self.keys.items()
                ]
            }

        self.server = LiveServer(app)
        self.issuer = self.server.url

    def sign(self, kid: str, alg: str = "RS256", **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": [AUDIENCE, "account"],
            "sub": "f3a1c0de",
            "preferred_username": "alice",
            "groups": ["developer", "finance-analysts", "app"],
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": alg, "kid": kid}, claims, self.keys[kid], [alg])


@pytest.fixture(scope="module")
def idp() -> Iterator[StandInIdp]:
    idp = StandInIdp()
    idp.keys = {"rsa-1": rsa_key(), "ec-1": ec_key()}
    yield idp
    idp.server.stop()


@pytest.fixture(scope="module")
def oidc_settings(pg_services: Services, idp: StandInIdp) -> Settings:
    return pg_services.settings.model_copy(
        update={"oidc_issuer": idp.issuer, "oidc_audience": AUDIENCE, "oidc_roles_claim": "groups"}
    )


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture()
def verifier(pg_services: Services, oidc_settings: Settings, monotonic: Monotonic) -> OidcVerifier:
    made = OidcVerifier.from_settings(
        oidc_settings, frozenset(pg_services.rbac.roles), monotonic=monotonic
    )
    assert made is not None
    return made


def authenticate(services: Services, verifier: OidcVerifier, token: str) -> Principal:
    verifiers = services.bearer_verifiers()
    verifiers.oidc = verifier
    return authenticate_bearer(token, services.db, verifiers)


def refused(verifier: OidcVerifier, token: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        verifier.verify(token)
    return info.value


def test_valid_token_maps_to_a_principal_with_policy_roles(
    pg_services: Services, idp: StandInIdp, verifier: OidcVerifier
) -> None:
    principal = authenticate(pg_services, verifier, idp.sign("rsa-1"))
    assert principal == Principal(name="alice", user_id=None, roles=("app", "developer"))
    assert principal.key_id is None and principal.key_models == "*"


def test_es256_and_sub_as_the_name(idp: StandInIdp, verifier: OidcVerifier) -> None:
    principal = verifier.verify(idp.sign("ec-1", alg="ES256", preferred_username=None))
    assert principal.name == "f3a1c0de"


def test_groups_outside_the_policy_give_no_roles(idp: StandInIdp, verifier: OidcVerifier) -> None:
    assert verifier.verify(idp.sign("rsa-1", groups=["finance-analysts"])).roles == ()
    assert verifier.verify(idp.sign("rsa-1", groups=None)).roles == ()
    assert verifier.verify(idp.sign("rsa-1", groups="auditor app")).roles == ("app", "auditor")


def test_nested_roles_claim(idp: StandInIdp, verifier: OidcVerifier) -> None:
    verifier.roles_claim = "realm_access.roles"
    token = idp.sign("rsa-1", groups=None, realm_access={"roles": ["operator", "offline_access"]})
    assert verifier.verify(token).roles == ("operator",)


def test_discovery_is_used_once_and_keys_are_cached(
    idp: StandInIdp, verifier: OidcVerifier
) -> None:
    before = idp.hits.copy()
    for _ in range(3):
        verifier.verify(idp.sign("rsa-1"))
    assert idp.hits["discovery"] - before["discovery"] == 1
    assert idp.hits["jwks"] - before["jwks"] == 1


def test_explicit_jwks_url_skips_discovery(
    pg_services: Services, idp: StandInIdp, oidc_settings: Settings
) -> None:
    settings = oidc_settings.model_copy(update={"oidc_jwks_url": f"{idp.issuer}/jwks"})
    verifier = OidcVerifier.from_settings(settings, frozenset(pg_services.rbac.roles))
    assert verifier is not None
    before = idp.hits.copy()
    verifier.verify(idp.sign("rsa-1"))
    assert idp.hits["discovery"] == before["discovery"]
    assert idp.hits["jwks"] - before["jwks"] == 1


def test_wrong_issuer_is_refused(
    pg_services: Services, idp: StandInIdp, verifier: OidcVerifier
) -> None:
    token = idp.sign("rsa-1", iss="https://evil.example.com")
    with pytest.raises(AuthenticationFailed, match="issuer this API does not accept"):
        authenticate(pg_services, verifier, token)
    assert "issuer" in refused(verifier, token).message


def test_wrong_audience_is_refused(idp: StandInIdp, verifier: OidcVerifier) -> None:
    error = refused(verifier, idp.sign("rsa-1", aud="another-api"))
    assert error.message == "The access token is not intended for this API (audience)."


def test_expiry_and_not_before_with_a_small_leeway(idp: StandInIdp, verifier: OidcVerifier) -> None:
    now = int(time.time())
    verifier.verify(idp.sign("rsa-1", exp=now - 10))  # within the leeway
    error = refused(verifier, idp.sign("rsa-1", exp=now - 120))
    assert (error.code, error.message) == ("expired_token", "The access token has expired.")
    assert refused(verifier, idp.sign("rsa-1", nbf=now + 120)).message == (
        "The access token is not valid yet."
    )
    assert refused(verifier, idp.sign("rsa-1", exp=None)).code == "invalid_token"


def test_tampered_signature_and_alg_confusion_are_refused(
    idp: StandInIdp, verifier: OidcVerifier
) -> None:
    token = idp.sign("rsa-1")
    header, payload, signature = token.split(".")
    other_payload = idp.sign("rsa-1", groups=["admin"]).split(".")[1]
    error = refused(verifier, f"{header}.{other_payload}.{signature}")
    assert error.message == "The access token's signature is invalid."
    # HS256 "signed" with the public key, the classic confusion attack (made by hand:
    # joserfc itself refuses a public key as an HMAC secret).
    rsa_1 = idp.keys["rsa-1"]
    assert isinstance(rsa_1, RSAKey)
    public_pem = rsa_1.as_pem(private=False)
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'rsa-1'})}.{_b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    hs = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert refused(verifier, hs).message == "The access token's signing algorithm is not accepted."
    none = f"{_b64({'alg': 'none', 'kid': 'rsa-1'})}.{payload}."
    assert (
        refused(verifier, none).message == "The access token's signing algorithm is not accepted."
    )
    # An RS256 header on the EC key.
    mixed = idp.sign("ec-1", alg="ES256").split(".")
    mixed[0] = _b64({"alg": "RS256", "kid": "ec-1"})
    assert "does not match its key" in refused(verifier, ".".join(mixed)).message


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_unknown_kid_refreshes_once_then_fails(
    idp: StandInIdp, verifier: OidcVerifier, monotonic: Monotonic
) -> None:
    verifier.verify(idp.sign("rsa-1"))
    stranger = StandInIdp.__new__(StandInIdp)
    stranger.issuer, stranger.keys = idp.issuer, {"rogue": rsa_key()}
    token = stranger.sign("rogue")
    monotonic.now += 60
    before = idp.hits["jwks"]
    error = refused(verifier, token)
    assert error.message == "The access token was signed with a key the IdP does not publish."
    assert idp.hits["jwks"] == before + 1
    refused(verifier, token)  # rate-limited: no second fetch within the interval
    assert idp.hits["jwks"] == before + 1
    monotonic.now += 10
    refused(verifier, token)
    assert idp.hits["jwks"] == before + 2


def test_key_rotation_at_the_idp_is_picked_up(
    idp: StandInIdp, verifier: OidcVerifier, monotonic: Monotonic
) -> None:
    verifier.verify(idp.sign("rsa-1"))
    old = idp.keys["rsa-1"]
    try:
        idp.keys["rsa-2"] = rsa_key()
        del idp.keys["rsa-1"]
        monotonic.now += 11
        assert verifier.verify(idp.sign("rsa-2")).name == "alice"
        idp.keys["rsa-1"] = old  # only to sign: the verifier's set no longer has it
        token = idp.sign("rsa-1")
        del idp.keys["rsa-1"]
        monotonic.now += 11
        refused(verifier, token)
    finally:
        idp.keys.pop("rsa-2", None)
        idp.keys["rsa-1"] = old


def test_key_set_is_refreshed_periodically(
    idp: StandInIdp, verifier: OidcVerifier, monotonic: Monotonic
) -> None:
    verifier.verify(idp.sign("rsa-1"))
    before = idp.hits["jwks"]
    monotonic.now += verifier.jwks.max_age_s - 1
    verifier.verify(idp.sign("rsa-1"))
    assert idp.hits["jwks"] == before
    monotonic.now += 1
    verifier.verify(idp.sign("rsa-1"))
    assert idp.hits["jwks"] == before + 1


def test_unreachable_idp_fails_closed_with_503(idp: StandInIdp) -> None:
    jwks = JwksCache(f"http://127.0.0.1:{free_port()}", http=httpx.Client(timeout=timing.scaled(2)))
    verifier = OidcVerifier(
        issuer=idp.issuer,
        audience=AUDIENCE,
        roles_claim="groups",
        role_names=frozenset({"app"}),
        jwks=jwks,
    )
    with pytest.raises(UpstreamUnavailable) as info:
        verifier.verify(idp.sign("rsa-1"))
    assert info.value.status == 503 and info.value.code == "idp_unavailable"


def test_discovery_naming_another_issuer_is_not_trusted(idp: StandInIdp) -> None:
    jwks = JwksCache(idp.issuer + "/")  # the discovery document says idp.issuer, not this
    verifier = OidcVerifier(idp.issuer, AUDIENCE, "groups", frozenset({"app"}), jwks)
    with pytest.raises(UpstreamUnavailable):
        verifier.verify(idp.sign("rsa-1"))


def test_idp_token_through_the_gateway(
    pg_services: Services, oidc_settings: Settings, idp: StandInIdp
) -> None:
    services = Services(
        settings=oidc_settings,
        db=pg_services.db,
        rbac=pg_services.rbac,
        privacy=pg_services.privacy,
    )
    server = LiveServer(gateway_app(services))
    try:
        with httpx.Client(base_url=server.url, timeout=timing.scaled(10)) as http:
            ok = http.get("/v1/models", headers={"Authorization": f"Bearer {idp.sign('rsa-1')}"})
            assert ok.status_code == 200, ok.text
            bad = idp.sign("rsa-1", aud="another-api")
            refused = http.get("/v1/models", headers={"Authorization": f"Bearer {bad}"})
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "invalid_token"
    finally:
        server.stop()


def test_settings_decide_whether_idp_tokens_are_accepted(
    pg_services: Services, oidc_settings: Settings
) -> None:
    roles = frozenset(pg_services.rbac.roles)
    assert OidcVerifier.from_settings(pg_services.settings, roles) is None
    without_audience = oidc_settings.model_copy(update={"oidc_audience": None})
    with pytest.raises(ConfigError, match="APPLIANCE_OIDC_AUDIENCE"):
        OidcVerifier.from_settings(without_audience, roles)

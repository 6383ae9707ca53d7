"""POST /oauth/token over HTTP against the live API app, and the tokens it issues in use."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest

from appliance.auth.api_keys import revoke_api_key
from appliance.models import AuditEvent
from appliance.services import Services
from tests import timing
from tests.auth import Client, gateway_app, new_client
from tests.conftest import LiveServer, wait_for_events


@pytest.fixture(scope="module")
def gateway(pg_services: Services) -> Iterator[LiveServer]:
    server = LiveServer(gateway_app(pg_services))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(gateway: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=timing.scaled(10)) as client:
        yield client


@pytest.fixture()
def client(pg_services: Services) -> Client:
    return new_client(pg_services)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def get_token(http: httpx.Client, client: Client, **form: str) -> httpx.Response:
    return http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        headers=basic(client.prefix, client.key),
    )


def oauth_error(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    return body.get("error_description", "")


def test_client_credentials_with_basic_auth(http: httpx.Client, client: Client) -> None:
    response = get_token(http, client)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "api:model:invoke"
    models = http.get("/v1/models", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert models.status_code == 200, models.text
    assert models.json()["object"] == "list"


def test_client_credentials_with_form_fields(http: httpx.Client, client: Client) -> None:
    response = http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.prefix,
            "client_secret": client.key,
            "scope": "api:model:invoke",
        },
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert http.get("/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_token_request_is_audited(
    http: httpx.Client, client: Client, pg_services: Services
) -> None:
    request_id = f"oauth-{client.prefix}"
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={**basic(client.prefix, client.key), "X-Request-Id": request_id},
    )
    assert response.status_code == 200
    (event,) = wait_for_events(pg_services, AuditEvent.request_id == request_id)
    assert (event.actor, event.api_key_prefix, event.status_code) == (
        client.username,
        client.prefix,
        200,
    )
    assert event.details["oauth_client_id"] == client.prefix
    assert client.key not in str(event.details)
    assert response.json()["access_token"] not in str(event.details)


def test_revoked_key_gets_no_token_and_its_tokens_stop_working(
    http: httpx.Client, client: Client, pg_services: Services
) -> None:
    token = get_token(http, client).json()["access_token"]
    with pg_services.db.session() as session:
        revoke_api_key(session, client.prefix)
    time.sleep(0.6)  # the per-process key-state cache holds an entry for at most 0.5 s
    response = http.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "revoked_api_key"
    refused = get_token(http, client)
    assert oauth_error(refused, 401, "invalid_client") == "This API key has been revoked."
    assert refused.headers["WWW-Authenticate"].startswith('Basic realm="appliance"')


def test_wrong_secret_is_invalid_client_with_a_challenge(
    http: httpx.Client, client: Client
) -> None:
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client.prefix, client.key[:-4] + "abcd"),
    )
    assert oauth_error(response, 401, "invalid_client") == "Incorrect API key provided."
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Basic realm="appliance"') and 'error="invalid_client"' in challenge


@pytest.mark.parametrize(
    ("headers", "form", "description"),
    [
        ({}, {}, "Client authentication is required."),
        ({"Authorization": "Bearer abc"}, {}, "Client authentication must use the Basic scheme."),
        ({"Authorization": "Basic !!!"}, {}, "The Basic credentials are not valid base64."),
        ({"Authorization": "Basic " + base64.b64encode(b"id").decode()}, {}, "lack"),
        ({}, {"client_id": "sk-app-aaaaaaaa"}, "Both client_id and client_secret are required."),
        ({}, {"client_id": "other", "client_secret": "x"}, "must be the public id"),
    ],
)
def test_missing_or_malformed_client_authentication(
    http: httpx.Client, headers: dict, form: dict, description: str
) -> None:
    response = http.post(
        "/oauth/token", data={"grant_type": "client_credentials", **form}, headers=headers
    )
    assert description in oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" in response.headers


def test_client_id_must_match_the_secret(
    http: httpx.Client, client: Client, pg_services: Services
) -> None:
    other = new_client(pg_services)
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(other.prefix, client.key),
    )
    assert "public id" in oauth_error(response, 401, "invalid_client")


def test_grant_type_is_required_and_must_be_client_credentials(
    http: httpx.Client, client: Client
) -> None:
    auth = basic(client.prefix, client.key)
    missing = http.post("/oauth/token", data={"scope": "api:model:invoke"}, headers=auth)
    assert oauth_error(missing, 400, "invalid_request") == "The 'grant_type' parameter is required."
    password = http.post("/oauth/token", data={"grant_type": "password"}, headers=auth)
    assert "client_credentials" in oauth_error(password, 400, "unsupported_grant_type")


def test_unknown_scope_is_invalid_scope(http: httpx.Client, client: Client) -> None:
    response = get_token(http, client, scope="api:model:invoke admin:users:write")
    assert "api:model:invoke" in oauth_error(response, 400, "invalid_scope")


@pytest.mark.parametrize("case", ["json", "both_methods", "secret_in_url", "repeated"])
def test_malformed_requests_are_invalid_request(
    http: httpx.Client, client: Client, case: str
) -> None:
    auth = basic(client.prefix, client.key)
    if case == "json":
        response = http.post(
            "/oauth/token", json={"grant_type": "client_credentials"}, headers=auth
        )
    elif case == "both_methods":
        response = http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client.prefix,
                "client_secret": client.key,
            },
            headers=auth,
        )
    elif case == "secret_in_url":
        response = http.post(
            "/oauth/token",
            params={"client_secret": client.key},
            data={"grant_type": "client_credentials", "client_id": client.prefix},
        )
    else:
        response = http.post(
            "/oauth/token",
            content="grant_type=client_credentials&grant_type=client_credentials",
            headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
        )
    oauth_error(response, 400, "invalid_request")


def test_only_post_is_allowed(http: httpx.Client, client: Client) -> None:
    # Unmatched requests are authenticated first (fail closed), then refused as 405.
    assert http.get("/oauth/token").status_code == 401
    response = http.get("/oauth/token", headers={"Authorization": f"Bearer {client.key}"})
    assert response.status_code == 405


def test_forged_or_garbage_bearer_gets_an_openai_error(http: httpx.Client, client: Client) -> None:
    token = get_token(http, client).json()["access_token"]
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    for bearer in (forged, "not-a-token"):
        response = http.get("/v1/models", headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("name", ["%C3%A9", "a%22", "b%5C"])
def test_repeated_odd_parameter_names_get_invalid_request_not_500(
    http: httpx.Client, name: str
) -> None:
    # Found by schemathesis: authlib refuses to render such characters in an error.
    response = http.post(
        "/oauth/token",
        content=f"{name}=1&{name}=2&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "repeated" in response.json()["error_description"]

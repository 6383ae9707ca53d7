"""Bad input gets an OpenAI-style error with the right status, is audited, and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import httpx
import openai
import pytest
from sqlalchemy import select

from appliance.auth.api_keys import revoke_api_key
from appliance.models import ApiKey, AuditEvent, utcnow
from appliance.services import Services
from appliance.upstream.registry import add_model
from tests import timing
from tests.api.conftest import Caller
from tests.conftest import free_port, unique, wait_for_events

MESSAGES = [{"role": "user", "content": "hi"}]


def sdk(api_server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=key, max_retries=0)


def post_raw(api_server, key: str | None, content: bytes, path: str = "/v1/chat/completions"):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(
        f"{api_server.url}{path}", content=content, headers=headers, timeout=timing.scaled(10)
    )


def assert_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"]
    return error


@pytest.mark.parametrize("key", [None, "sk-app-wrongwrongwrongwrongwrongwrong", "not-a-key"])
def test_missing_or_invalid_key_is_401(api_server, tiny_alias: str, key: str | None) -> None:
    if key is not None:  # the SDK refuses to send no key at all
        with pytest.raises(openai.AuthenticationError):
            sdk(api_server, key).chat.completions.create(model=tiny_alias, messages=MESSAGES)
    error = assert_openai_error(post_raw(api_server, key, b'{"model": "x", "messages": []}'), 401)
    assert error["type"] == "authentication_error"


def test_revoked_key_is_401(
    api_server, caller: Caller, tiny_alias: str, pg_services: Services
) -> None:
    with pg_services.db.session() as session:
        revoke_api_key(session, caller.prefix)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        sdk(api_server, caller.key).chat.completions.create(model=tiny_alias, messages=MESSAGES)


def test_expired_key_is_401(
    api_server, caller: Caller, tiny_alias: str, pg_services: Services
) -> None:
    with pg_services.db.session() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == caller.prefix))
        key.expires_at = utcnow() - timedelta(seconds=1)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        sdk(api_server, caller.key).chat.completions.create(model=tiny_alias, messages=MESSAGES)


def test_unknown_model_is_404(api_server, caller: Caller) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        sdk(api_server, caller.key).chat.completions.create(
            model="no-such-model", messages=MESSAGES
        )


def test_key_scope_and_role_are_enforced_403(api_server, make_caller, tiny_alias: str) -> None:
    out_of_scope = make_caller(models="other-*")
    with pytest.raises(openai.PermissionDeniedError, match="api:model:invoke"):
        sdk(api_server, out_of_scope.key).chat.completions.create(
            model=tiny_alias, messages=MESSAGES
        )
    auditor = make_caller(role="auditor")
    with pytest.raises(openai.PermissionDeniedError, match="api:model:invoke"):
        sdk(api_server, auditor.key).chat.completions.create(model=tiny_alias, messages=MESSAGES)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"model": "x", "messages": [', "could not parse the JSON body"),
        (b"\xff\xfe", "could not parse the JSON body"),
        (b"[1, 2]", "must be an object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "'model'"),
        (b'{"model": "m", "messages": []}', "'messages'"),
        # vLLM takes any role its chat template knows; a role that is not a string is malformed
        (b'{"model": "m", "messages": [{"role": 7, "content": "x"}]}', "messages.0.role"),
        (b'{"model": "m", "messages": [{"content": "x"}]}', "messages.0.role"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            "'max_tokens'",
        ),
    ],
)
def test_malformed_requests_are_400(api_server, caller: Caller, body: bytes, needle: str) -> None:
    error = assert_openai_error(post_raw(api_server, caller.key, body), 400)
    assert error["type"] == "invalid_request_error"
    assert needle in error["message"]


def test_oversized_body_is_413(api_server, caller: Caller, pg_services: Services) -> None:
    limit = pg_services.settings.max_body_bytes
    body = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"a" * limit + b'"}]}'
    error = assert_openai_error(post_raw(api_server, caller.key, body), 413)
    assert str(limit) in error["message"]


def test_unknown_route_and_method(api_server, caller: Caller) -> None:
    assert_openai_error(post_raw(api_server, caller.key, b"{}", path="/v1/nope"), 404)
    response = httpx.get(
        f"{api_server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {caller.key}"}
    )
    assert_openai_error(response, 405)


def test_upstream_down_is_503_and_audited(
    api_server, caller: Caller, pg_services: Services
) -> None:
    name = unique("down")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[f"http://127.0.0.1:{free_port()}"])
    with pytest.raises(openai.InternalServerError) as raised:
        sdk(api_server, caller.key).chat.completions.create(model=name, messages=MESSAGES)
    assert raised.value.status_code == 503
    stream_response = post_raw(
        api_server,
        caller.key,
        b'{"model": "%s", "stream": true, "messages": [{"role": "user", "content": "x"}]}'
        % name.encode(),
    )
    assert_openai_error(stream_response, 503)
    events = wait_for_events(pg_services, AuditEvent.model == name, expect=2)
    assert [e.status_code for e in events] == [503, 503]
    assert all(e.outcome == "failure" and e.actor == caller.username for e in events)


def test_failures_are_audited_without_the_key(api_server, pg_services: Services) -> None:
    agent = unique("agent")
    response = httpx.post(
        f"{api_server.url}/v1/chat/completions",
        content=b"{}",
        headers={"Authorization": "Bearer sk-app-bogusbogusbogusbogusbogus", "User-Agent": agent},
    )
    assert response.status_code == 401
    (event,) = wait_for_events(pg_services, AuditEvent.user_agent == agent)
    assert (event.outcome, event.status_code, event.actor) == ("failure", 401, None)
    assert event.request_id == response.headers["x-request-id"]
    assert "bogus" not in str(event.details)

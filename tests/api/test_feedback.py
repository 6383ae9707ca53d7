"""POST /v1/feedback: a caller rates its own earlier answer; the rating is audited with the
alias version that answered, which is what canary decisions read."""

from __future__ import annotations

import httpx
import openai
import pytest
from sqlalchemy import select

from appliance.models import AuditEvent
from appliance.services import Services
from appliance.upstream.aliases import add_alias
from tests import timing
from tests.api.conftest import Caller
from tests.conftest import LiveServer, unique, wait_for_events


@pytest.fixture(scope="module")
def canary_alias(pg_services: Services, tiny_alias: str) -> str:
    name = unique("rated")
    with pg_services.db.session() as session:
        add_alias(session, name, [(tiny_alias, None, 100, "v7")])
        session.commit()
    return name


def answered(services: Services, client: openai.OpenAI, alias: str, text: str) -> str:
    """The request id of a completion, once its audit event is written."""
    raw = client.chat.completions.with_raw_response.create(
        model=alias, messages=[{"role": "user", "content": text}], max_tokens=4
    )
    request_id = raw.headers["X-Request-Id"]
    wait_for_events(services, AuditEvent.request_id == request_id)
    return request_id


def rate(server: LiveServer, key: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/feedback",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=timing.scaled(10),
    )


def test_a_rating_is_audited_with_the_version_that_answered(
    pg_services: Services,
    api_server: LiveServer,
    client: openai.OpenAI,
    caller: Caller,
    canary_alias: str,
) -> None:
    request_id = answered(pg_services, client, canary_alias, "hello")

    response = rate(api_server, caller.key, {"request_id": request_id, "rating": "bad"})
    assert response.status_code == 200
    assert response.json() == {"object": "feedback", "request_id": request_id, "rating": "bad"}
    (event,) = wait_for_events(
        pg_services,
        AuditEvent.action == "api.feedback",
        AuditEvent.api_key_prefix == caller.prefix,
    )
    assert event.model == canary_alias
    assert event.details["rated_request"] == request_id and event.details["rating"] == "bad"
    assert event.details["route"]["version"] == "v7"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"request_id": "no-such-request", "rating": "good"}, 404, "No completion"),
        ({"request_id": "x", "rating": "meh"}, 400, "rating"),
        ({"request_id": "bad id!", "rating": "good"}, 400, "request_id"),
        ({"rating": "good"}, 400, "request_id"),
        ({"request_id": "x", "rating": "good", "comment": "free text"}, 400, "comment"),
    ],
)
def test_bad_ratings_are_refused_and_change_nothing(
    pg_services: Services,
    api_server: LiveServer,
    caller: Caller,
    body: object,
    status: int,
    fragment: str,
) -> None:
    response = rate(api_server, caller.key, body)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]
    with pg_services.db.session() as session:
        recorded = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "api.feedback",
                AuditEvent.api_key_prefix == caller.prefix,
                AuditEvent.outcome == "success",
            )
        ).all()
    assert recorded == []


def test_another_keys_answer_cannot_be_rated(
    pg_services: Services,
    api_server: LiveServer,
    client: openai.OpenAI,
    make_caller: object,
    canary_alias: str,
) -> None:
    request_id = answered(pg_services, client, canary_alias, "hi")
    other: Caller = make_caller()  # type: ignore[operator]
    response = rate(api_server, other.key, {"request_id": request_id, "rating": "bad"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "request_not_found"
    malformed = httpx.post(
        f"{api_server.url}/v1/feedback",
        headers={"Authorization": f"Bearer {other.key}", "Content-Type": "application/json"},
        content=b"{not json",
        timeout=timing.scaled(10),
    )
    assert malformed.status_code == 400

"""``/openapi.json`` is valid OpenAPI 3.1, describes every route, and holds up to schemathesis."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from appliance.auth.api_keys import create_api_key
from appliance.auth.users import create_user
from appliance.services import Services
from appliance.upstream.registry import add_model
from tests import timing
from tests.api.test_protocol import StandIn
from tests.conftest import LiveServer, unique

MODEL_CALLS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
ERROR_STATUSES = {"400", "401", "403", "404", "413", "429", "503"}
# Generated cases per operation: (valid requests, invalid requests). Operations without
# parameters have no invalid request and run until hypothesis has nothing new to send.
BUDGET = {
    "/v1/chat/completions": (200, 100),
    "/v1/completions": (240, 120),
    "/v1/embeddings": (240, 100),
    "/oauth/token": (20, 20),
}
# vLLM's other endpoints, answered by the recording vLLM stand-in (tests/api/vllm_standin.py)
VLLM_ONLY = {
    "/v1/responses": (120, 60),
    "/tokenize": (60, 40),
    "/detokenize": (50, 30),
    "/score": (40, 30),
    "/v1/score": (40, 30),
    "/rerank": (40, 30),
    "/v1/rerank": (40, 30),
    "/v2/rerank": (40, 30),
    "/pooling": (50, 30),
    "/classify": (50, 30),
    "/v1/audio/transcriptions": (40, 30),
    "/v1/audio/translations": (40, 30),
}
SMALL = (10, 0)
MIN_CASES = 2000


@pytest.fixture(scope="module")
def admin_key(pg_services: Services) -> str:
    """An admin's key: a role without rate limits, so every case reaches the routes."""
    with pg_services.db.session() as session:
        user, _ = create_user(session, unique("schema"), ["admin"])
        return create_api_key(session, user, "schemathesis").plaintext


@pytest.fixture(scope="module")
def auth(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


@pytest.fixture(scope="module")
def document(api_server: LiveServer, auth: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{api_server.url}/openapi.json", headers=auth, timeout=timing.scaled(10))
    assert response.status_code == 200, "create_app must call appliance.api.openapi.init_app"
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


@pytest.fixture(scope="module")
def fast_model(pg_services: Services) -> Iterator[str]:
    """A model served by the stand-in upstream, so generated requests are answered at once."""
    stand_in = StandIn()
    name = unique("fuzz")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[stand_in.url], served_name="fuzz-served")
    yield name
    stand_in.stop()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert document["security"] == [{"bearer": []}]


def test_document_lists_every_route_of_the_app(
    document: dict[str, Any], api_server: LiveServer
) -> None:
    app = api_server.server.app
    routes = {
        (re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()  # type: ignore[attr-defined]
        if rule.endpoint != "static"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert {(path, method) for path, method, _ in operations(document)} == routes
    undocumented = [
        op["operationId"] for _, _, op in operations(document) if op.get("x-undocumented")
    ]
    assert undocumented == [], "describe these endpoints in appliance/api/openapi.py"


def test_model_calls_declare_body_answers_and_errors(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for path in MODEL_CALLS:
        op = document["paths"][path]["post"]
        body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body.startswith("#/components/schemas/") and body.rsplit("/", 1)[1] in schemas
        assert {"200", *ERROR_STATUSES} <= set(op["responses"])
        assert "security" not in op  # the document-wide bearer scheme applies
    chat = schemas["ChatCompletionRequest"]["properties"]
    assert {"temperature", "top_k", "repetition_penalty", "tools", "guided_json"} <= set(chat)
    assert schemas["ChatCompletionRequest"]["additionalProperties"] is True
    error = document["components"]["responses"]["429"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "Retry-After" in error["headers"]
    for path in ("/healthz", "/readyz"):
        assert document["paths"][path]["get"]["security"] == []


# vLLM's other endpoints (issue 19): (request media type, the permission each needs)
VLLM_CALLS = {
    "/v1/responses": ("application/json", ["api:responses:invoke"]),
    "/tokenize": ("application/json", ["api:tokenize:invoke"]),
    "/detokenize": ("application/json", ["api:tokenize:invoke"]),
    "/score": ("application/json", ["api:score:invoke"]),
    "/v1/score": ("application/json", ["api:score:invoke"]),
    "/rerank": ("application/json", ["api:rerank:invoke"]),
    "/v1/rerank": ("application/json", ["api:rerank:invoke"]),
    "/v2/rerank": ("application/json", ["api:rerank:invoke"]),
    "/pooling": ("application/json", ["api:pooling:invoke"]),
    "/classify": ("application/json", ["api:classify:invoke"]),
    "/v1/audio/transcriptions": ("multipart/form-data", ["api:audio:invoke"]),
    "/v1/audio/translations": ("multipart/form-data", ["api:audio:invoke"]),
}


def test_every_vllm_endpoint_is_described_with_its_permission(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for path, (media, permissions) in VLLM_CALLS.items():
        op = document["paths"][path]["post"]
        body = op["requestBody"]["content"][media]["schema"]["$ref"]
        assert body.rsplit("/", 1)[1] in schemas
        answer = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert answer.rsplit("/", 1)[1] in schemas
        assert {"200", *ERROR_STATUSES} <= set(op["responses"])
        assert op["x-permissions"] == permissions, path
    assert document["paths"]["/v1/chat/completions"]["post"]["x-permissions"] == [
        "api:model:invoke"
    ]
    assert "api:audio:invoke" in document["paths"]["/v1/models"]["get"]["x-permissions"]
    streamed = document["paths"]["/v1/responses"]["post"]["responses"]["200"]["content"]
    assert streamed["text/event-stream"]["x-event-schema"]["$ref"].endswith("ResponsesStreamEvent")
    audio = schemas["AudioRequest"]
    assert audio["properties"]["file"]["format"] == "binary"
    assert {"file", "model"} <= set(audio["required"])
    # what vLLM accepts, the document does not refuse
    chat = schemas["ChatCompletionRequest"]["properties"]
    assert "maximum" not in json.dumps(chat["temperature"])
    assert "maximum" not in json.dumps(chat["top_logprobs"])
    assert "prompt_embeds" in schemas["CompletionRequest"]["properties"]
    assert "messages" in schemas["EmbeddingRequest"]["properties"]


def closed_below_the_top(document: dict[str, Any]) -> dict[str, Any]:
    """The document with nested objects closed to extra fields, for generating requests.

    Random extra fields deep inside messages make generation several times slower and
    reach nothing new; the request objects themselves stay open, so extras are sent.
    """
    fuzzed = copy.deepcopy(document)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("additionalProperties") is True:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    for name, schema in fuzzed["components"]["schemas"].items():
        if not name.endswith("Request"):
            close(schema)
    return fuzzed


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(
    document: dict[str, Any],
    api_server: LiveServer,
    auth: dict[str, str],
    fast_model: str,
    standin_model: str,
) -> None:
    schema = schemathesis.openapi.from_dict(closed_below_the_top(document))
    session = requests.Session()  # keep-alive: the calls, not connecting, are measured
    calls: dict[str, int] = {}
    statuses: dict[int, int] = {}

    def fuzz(operation: Any, mode: GenerationMode, budget: int, *, pin_model: str | None) -> None:
        @settings(
            max_examples=budget,
            phases=[Phase.explicit, Phase.generate],
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            if pin_model and isinstance(case.body, dict) and sum(calls.values()) % 4:
                case.body["model"] = pin_model  # 3 in 4 valid requests reach an upstream
            response = case.call_and_validate(
                base_url=api_server.url,
                session=session,
                headers=auth,
                checks=[not_a_server_error],
            )
            calls[operation.label] = calls.get(operation.label, 0) + 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        run()

    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/readyz":
            continue  # 503 by design while a model registered by another test is down
        vllm_only = operation.path in VLLM_ONLY
        positive, negative = (VLLM_ONLY if vllm_only else BUDGET).get(operation.path, SMALL)
        model = standin_model if vllm_only else fast_model
        api_call = operation.path.startswith("/v1/") or vllm_only
        for mode, budget in (
            (GenerationMode.POSITIVE, positive),
            (GenerationMode.NEGATIVE, negative),
        ):
            if budget:
                pin = model if mode is GenerationMode.POSITIVE and api_call else None
                fuzz(operation, mode, budget, pin_model=pin)
    elapsed = time.monotonic() - started
    session.close()
    print(f"schemathesis: {sum(calls.values())} cases in {elapsed:.1f} s {calls} {statuses}")
    assert sum(calls.values()) >= MIN_CASES
    assert statuses.get(200, 0) >= 300  # valid requests did get answers, not only errors

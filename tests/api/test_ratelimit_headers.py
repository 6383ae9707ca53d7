"""OpenAI's x-ratelimit-* headers on /v1 answers: what the caller has left of its limits.

The upstream is a vLLM stand-in (no generation: the limits are what is tested), the
gateway counts the limits in Redis or, without it, in the host's shared file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from appliance.limits.budget import HEADER_NAMES, Budget, duration, tokens_allowance
from appliance.services import Services
from tests import timing
from tests.api.conftest import Caller, gateway_workers
from tests.api.test_limits_gateway import flush, set_key_limits
from tests.conftest import REDIS_URL, LiveServer, worker_redis_db

MESSAGES = [{"role": "user", "content": "hi"}]
DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")


@pytest.fixture(scope="module")
def redis_gateway(pg_services: Services) -> Iterator[LiveServer]:
    url = f"{REDIS_URL}/{worker_redis_db()}"
    flush(url)
    with gateway_workers(pg_services, 1, redis_url=url) as (server,):
        yield server
    flush(url)


@pytest.fixture(params=["shared-file", "redis"])
def gateway(request: pytest.FixtureRequest, api_server: LiveServer) -> LiveServer:
    """The gateway without Redis (the host's shared file), then with it."""
    if request.param == "redis":
        return request.getfixturevalue("redis_gateway")
    return api_server


def chat(server: LiveServer, caller: Caller, standin_model: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {caller.key}"},
        json={"model": standin_model, "messages": MESSAGES, "max_tokens": 2},
        timeout=timing.scaled(10),
    )


def limits_of(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in HEADER_NAMES if name in response.headers}


def test_each_answer_says_what_is_left_of_the_minute_and_the_day(
    gateway: LiveServer,
    make_caller: Callable[..., Caller],
    pg_services: Services,
    standin_model: str,
) -> None:
    caller = make_caller(role="app")
    set_key_limits(pg_services, caller, rpm=10, tpd=1000)
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=caller.key, max_retries=0)
    first = sdk.chat.completions.with_raw_response.create(
        model=standin_model, messages=MESSAGES, max_tokens=2
    )
    assert first.parse().choices  # the SDK reads the answer as before
    assert limits_of(first.http_response) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "6s",  # one request is back every 60 s / 10
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "1000",
        "x-ratelimit-reset-tokens": "0s",  # nothing used yet today
    }
    calls, deadline = 1, timing.deadline(5)
    while True:  # the first call's 5 tokens are charged once its answer was sent
        second = chat(gateway, caller, standin_model)
        calls += 1
        if second.headers["x-ratelimit-remaining-tokens"] != "1000":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    headers = limits_of(second)
    remaining = int(headers["x-ratelimit-remaining-tokens"])  # 5 tokens a call, charged
    assert remaining % 5 == 0 and 1000 - 5 * (calls - 1) <= remaining < 1000  # as they end
    assert DURATION.match(headers["x-ratelimit-reset-tokens"])
    assert headers["x-ratelimit-reset-tokens"] not in {"0s", "0ms"}  # at 00:00 UTC
    assert int(headers["x-ratelimit-remaining-requests"]) <= 8  # two calls at least
    assert DURATION.match(headers["x-ratelimit-reset-requests"])
    # /v1/models is not counted, but says the same (once every call was charged)
    deadline = timing.deadline(5)
    while True:
        listed = httpx.get(
            f"{gateway.url}/v1/models",
            headers={"Authorization": f"Bearer {caller.key}"},
            timeout=timing.scaled(10),
        )
        assert listed.status_code == 200
        if listed.headers["x-ratelimit-remaining-tokens"] == str(1000 - 5 * calls):
            break
        assert time.monotonic() < deadline, listed.headers
        time.sleep(0.05)
    assert listed.headers["x-ratelimit-limit-requests"] == "10"
    left = int(listed.headers["x-ratelimit-remaining-requests"])
    assert int(headers["x-ratelimit-remaining-requests"]) <= left <= 10 - calls + 1


def test_a_refusal_says_it_too(
    gateway: LiveServer,
    make_caller: Callable[..., Caller],
    pg_services: Services,
    standin_model: str,
) -> None:
    caller = make_caller(role="operator")  # a role without limits: only the key's
    set_key_limits(pg_services, caller, rpm=1, tpd=None)
    assert chat(gateway, caller, standin_model).headers["x-ratelimit-reset-requests"] == "1m0s"
    refused = chat(gateway, caller, standin_model)
    assert refused.status_code == 429
    headers = limits_of(refused)
    assert headers.keys() == {
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }  # no token limit: no token headers
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert DURATION.match(headers["x-ratelimit-reset-requests"])
    assert int(refused.headers["Retry-After"]) >= 1


def test_a_spent_day_says_no_tokens_are_left(
    api_server: LiveServer,
    make_caller: Callable[..., Caller],
    pg_services: Services,
    standin_model: str,
) -> None:
    caller = make_caller(role="operator")
    set_key_limits(pg_services, caller, rpm=None, tpd=5)
    assert chat(api_server, caller, standin_model).status_code == 200  # 5 tokens: the whole day's
    deadline = timing.deadline(5)
    while (refused := chat(api_server, caller, standin_model)).status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert refused.status_code == 429
    headers = limits_of(refused)
    assert headers["x-ratelimit-limit-tokens"] == "5"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert DURATION.match(headers["x-ratelimit-reset-tokens"])
    assert "x-ratelimit-limit-requests" not in headers  # no requests per minute


def test_no_headers_for_a_caller_without_limits_nor_for_an_unauthenticated_call(
    api_server: LiveServer, make_caller: Callable[..., Caller], standin_model: str
) -> None:
    unlimited = make_caller(role="operator")  # the operator role sets no limits
    answered = chat(api_server, unlimited, standin_model)
    assert answered.status_code == 200
    assert limits_of(answered) == {}
    refused = httpx.post(f"{api_server.url}/v1/chat/completions", json={}, timeout=10)
    assert refused.status_code == 401
    assert limits_of(refused) == {}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (12.25, "12.25s"),
        (59.9996, "1m0s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (3723.5, "1h2m3.5s"),
        (86_400, "24h0m0s"),
    ],
)
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_unlimited_dimensions_have_no_headers() -> None:
    assert Budget().headers() == {}
    tokens = tokens_allowance(100, 40, 0.0)
    assert Budget(tokens=tokens).headers() == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "60",
        "x-ratelimit-reset-tokens": "24h0m0s",
    }

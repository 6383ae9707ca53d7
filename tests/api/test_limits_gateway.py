"""Rate limits on the data path: two gateway 'workers' share one Redis budget per key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
import redis
from sqlalchemy import select

from appliance.models import ApiKey, AuditEvent
from appliance.services import Services
from tests.api.conftest import Caller, gateway_workers
from tests.conftest import REDIS_URL, LiveServer, wait_for_events, worker_redis_db

REDIS_DB = worker_redis_db()
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def redis_workers(pg_services: Services) -> Iterator[list[LiveServer]]:
    """Two gateway 'workers' sharing one Redis for their rate limits."""
    url = f"{REDIS_URL}/{REDIS_DB}"
    flush(url)
    with gateway_workers(pg_services, redis_url=url) as servers:
        yield servers
    flush(url)


def flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def set_key_limits(services: Services, caller: Caller, rpm: int | None, tpd: int | None) -> None:
    with services.db.session() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == caller.prefix))
        key.requests_per_minute, key.tokens_per_day = rpm, tpd


def test_requests_per_minute_are_shared_across_workers(
    redis_workers: list[LiveServer], make_caller, tiny_alias: str, pg_services: Services
) -> None:
    caller = make_caller(role="app")
    set_key_limits(pg_services, caller, rpm=4, tpd=None)
    clients = [
        openai.OpenAI(base_url=f"{s.url}/v1", api_key=caller.key, max_retries=0)
        for s in redis_workers
    ]
    for i in range(4):  # the burst, alternating between the two workers
        clients[i % 2].chat.completions.create(model=tiny_alias, messages=MESSAGES, max_tokens=2)
    for client in clients:
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model=tiny_alias, messages=MESSAGES, max_tokens=2)
        assert "4 requests per minute" in raised.value.message
        assert int(raised.value.response.headers["Retry-After"]) >= 1
    ready = httpx.get(f"{redis_workers[0].url}/readyz").json()
    assert ready["checks"]["rate_limits"]["mode"] == "redis"
    assert ready["checks"]["rate_limits"]["backend"] == "redis"
    refused = wait_for_events(
        pg_services,
        AuditEvent.api_key_prefix == caller.prefix,
        AuditEvent.status_code == 429,
        expect=2,
    )
    assert len(refused) == 2


def test_tokens_per_day_are_charged_after_each_call(
    redis_workers: list[LiveServer], make_caller, tiny_alias: str, pg_services: Services
) -> None:
    caller = make_caller(role="app")
    set_key_limits(pg_services, caller, rpm=None, tpd=10)
    client = openai.OpenAI(base_url=f"{redis_workers[1].url}/v1", api_key=caller.key, max_retries=0)
    used = 0
    with pytest.raises(openai.RateLimitError) as raised:
        for _ in range(10):
            completion = client.chat.completions.create(
                model=tiny_alias, messages=MESSAGES, max_tokens=4, stream=False
            )
            used += completion.usage.total_tokens
    assert used >= 10  # refused only once the day's budget was spent
    assert "tokens per day" in raised.value.message


def test_role_caps_max_tokens(api_server: LiveServer, caller: Caller, tiny_alias: str) -> None:
    client = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=caller.key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:  # developer: max_tokens 4096
        client.chat.completions.create(model=tiny_alias, messages=MESSAGES, max_tokens=5000)
    assert raised.value.body["param"] == "max_tokens"


def test_without_redis_the_gateway_limits_per_host_and_says_so(
    api_server: LiveServer,
) -> None:
    ready = httpx.get(f"{api_server.url}/readyz").json()
    assert ready["checks"]["rate_limits"]["mode"] == "local"
    assert ready["checks"]["rate_limits"]["backend"] == "shared-file (this host only)"

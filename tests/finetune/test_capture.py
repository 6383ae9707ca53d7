"""Opt-in capture through the real gateway: only listed keys, only desensitized text."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import openai
import pytest
from sqlalchemy import select

from appliance.api.app import create_app
from appliance.config import SHIPPED_POLICIES
from appliance.models import FinetuneRecord, utcnow
from appliance.services import Services, build_services
from appliance.upstream.aliases import add_alias
from appliance.upstream.registry import add_model
from tests import timing
from tests.api.conftest import Caller, new_caller
from tests.conftest import LiveServer, make_settings, unique

PHONE = "13812345678"


@pytest.fixture(scope="module")
def captured_alias(pg_services: Services, engine_server: LiveServer) -> str:
    alias = unique("captured")
    with pg_services.db.session() as session:
        model = unique("capture-base")
        add_model(
            session, model, upstream_urls=[f"{engine_server.url}/v1"], served_name="tiny-served"
        )
        add_alias(session, alias, [(model, None, 100, "base")])
        session.commit()
    return alias


@pytest.fixture(scope="module")
def opted_in(pg_services: Services) -> Caller:
    return new_caller(pg_services)


@pytest.fixture(scope="module")
def gateway(
    pg_services: Services,
    captured_alias: str,
    opted_in: Caller,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("capture-policies")
    for path in SHIPPED_POLICIES.iterdir():
        shutil.copy(path, folder / path.name)
    (folder / "finetune.yaml").write_text(
        f"aliases:\n  {captured_alias}:\n"
        f"    capture: {{keys: [{opted_in.prefix}], retention_days: 7}}\n"
    )
    settings = make_settings(
        pg_services.settings.home,
        database_url=pg_services.settings.effective_database_url,
        policies_dir=str(folder),
    )
    app = create_app(services=build_services(settings))
    server = LiveServer(app)
    yield server
    server.stop()
    app.extensions["appliance"].close()


def captured(services: Services, alias: str) -> list[FinetuneRecord]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(FinetuneRecord)
                .where(FinetuneRecord.alias == alias)
                .order_by(FinetuneRecord.id)
            )
        )


def ask(server: LiveServer, caller: Caller, alias: str, *, stream: bool) -> str:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=caller.key, max_retries=0)
    messages = [{"role": "user", "content": f"Please call me back on {PHONE} today"}]
    if not stream:
        reply = client.chat.completions.create(
            model=alias,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=8,
            temperature=0,
        )
        return reply.choices[0].message.content or ""
    chunks = client.chat.completions.create(
        model=alias,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=8,
        temperature=0,
        stream=True,
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_only_opted_in_keys_are_captured_and_only_desensitized(
    pg_services: Services, gateway: LiveServer, captured_alias: str, opted_in: Caller
) -> None:
    other = new_caller(pg_services)
    ask(gateway, other, captured_alias, stream=False)
    assert captured(pg_services, captured_alias) == []

    answer = ask(gateway, opted_in, captured_alias, stream=False)
    streamed = ask(gateway, opted_in, captured_alias, stream=True)
    deadline = timing.deadline(10)  # a stream's call is accounted once it has ended
    while len(rows := captured(pg_services, captured_alias)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(rows) == 2
    for row, caller_saw in zip(rows, (answer, streamed), strict=True):
        assert row.source == f"capture:{opted_in.prefix}".lower()
        user, assistant = row.record["messages"]
        assert user["role"] == "user" and PHONE not in user["content"]
        assert "call me back on" in user["content"]  # the rest of the text is kept
        assert assistant["role"] == "assistant" and assistant["content"]
        # Greedy and the same prompt: the stream and the plain call answer alike.
        assert assistant["content"] == caller_saw or PHONE not in caller_saw
        assert row.expires_at is not None
        left = row.expires_at - utcnow()
        assert timedelta(days=6, hours=23) < left <= timedelta(days=7)


def test_a_failed_call_is_not_captured(
    pg_services: Services, gateway: LiveServer, captured_alias: str, opted_in: Caller
) -> None:
    before = len(captured(pg_services, captured_alias))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=opted_in.key, max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=captured_alias,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=100_000,
        )
    assert len(captured(pg_services, captured_alias)) == before


def test_the_capture_rule_needs_listed_keys(tmp_path: Path) -> None:
    from appliance.finetune.capture import start_capture
    from appliance.finetune.policy import FinetunePolicy

    policy = FinetunePolicy.model_validate({"aliases": {"a": {"capture": {"keys": ["sk-1"]}}}})
    messages = [{"role": "user", "content": "x"}]
    assert start_capture(policy, "a", "sk-1", messages) is not None
    assert start_capture(policy, "a", "sk-2", messages) is None
    assert start_capture(policy, "b", "sk-1", messages) is None  # not a fine-tuned alias
    assert start_capture(policy, "a", None, messages) is None  # an SSO caller has no key

"""/v1/models lists what the upstream says of each model: max_model_len, root, parent.

The upstream is a vLLM stand-in listing a base model and a LoRA adapter as vLLM does
(tests/api/vllm_standin.py). An alias of the adapter lists it with its base model as
``parent`` (the base's public name, the one a caller can use).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from appliance.services import Services
from appliance.upstream.aliases import add_alias
from appliance.upstream.registry import add_model
from tests import timing
from tests.api.conftest import Caller
from tests.api.vllm_standin import (
    ADAPTER,
    ADAPTER_ROOT,
    BASE,
    BASE_ROOT,
    MAX_MODEL_LEN,
    VllmStandIn,
)
from tests.conftest import LiveServer, free_port, unique

FIELDS = ("max_model_len", "root", "parent")


@pytest.fixture(scope="module")
def standin() -> Iterator[VllmStandIn]:
    server = VllmStandIn()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def names(pg_services: Services, standin: VllmStandIn) -> dict[str, str]:
    made = {
        "base": unique("vllm-base"),
        "adapter": unique("sql-bot"),
        "plain": unique("base-alias"),
        "canary": unique("canary"),
        "dead": unique("dead"),
    }
    with pg_services.db.session() as session:
        add_model(session, made["base"], upstream_urls=[f"{standin.url}/v1"], served_name=BASE)
        add_model(session, made["dead"], upstream_urls=[f"http://127.0.0.1:{free_port()}"])
        session.flush()
        add_alias(session, made["adapter"], [(made["base"], ADAPTER, 100, "v1")])
        add_alias(session, made["plain"], [(made["base"], None, 100, "")])
        add_alias(
            session,
            made["canary"],
            [(made["base"], ADAPTER, 90, "v1"), (made["base"], None, 10, "v0")],
        )
    return made


def listing(server: LiveServer, caller: Caller) -> dict[str, dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/v1/models",
        headers={"Authorization": f"Bearer {caller.key}"},
        timeout=timing.scaled(20),
    )
    assert answer.status_code == 200
    return {entry["id"]: entry for entry in answer.json()["data"]}


def upstream_fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in FIELDS if key in entry}


def test_a_model_is_listed_with_its_upstreams_fields(
    api_server: LiveServer, caller: Caller, names: dict[str, str]
) -> None:
    entries = listing(api_server, caller)
    base = entries[names["base"]]
    assert base["object"] == "model" and base["owned_by"] == "appliance"
    assert upstream_fields(base) == {
        "max_model_len": MAX_MODEL_LEN,
        "root": BASE_ROOT,
        "parent": None,
    }


def test_an_adapter_lists_its_base_as_parent_and_its_bases_context(
    api_server: LiveServer, caller: Caller, names: dict[str, str]
) -> None:
    entries = listing(api_server, caller)
    assert upstream_fields(entries[names["adapter"]]) == {
        "max_model_len": MAX_MODEL_LEN,  # vLLM lists none for an adapter: its base's
        "root": ADAPTER_ROOT,
        "parent": names["base"],
    }
    assert upstream_fields(entries[names["plain"]]) == upstream_fields(entries[names["base"]])
    # a canary between the adapter and its base: the context both have, no single root
    assert upstream_fields(entries[names["canary"]]) == {"max_model_len": MAX_MODEL_LEN}


def test_the_sdk_reads_the_fields_and_an_unreachable_upstream_lists_none(
    api_server: LiveServer, caller: Caller, names: dict[str, str], standin: VllmStandIn
) -> None:
    sdk = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=caller.key, max_retries=0)
    models = {m.id: m for m in sdk.models.list().data}
    extra = models[names["adapter"]].model_extra or {}
    assert extra["max_model_len"] == MAX_MODEL_LEN and extra["parent"] == names["base"]
    dead = models[names["dead"]].model_dump()
    assert not set(FIELDS) & set(dead)
    # the upstream is asked about its models once in a while, not on every listing
    asked = len(standin.sent("/v1/models"))
    listing(api_server, caller)
    assert len(standin.sent("/v1/models")) == asked


def test_the_built_in_engines_model_is_listed_with_its_context_length(
    api_server: LiveServer, caller: Caller, tiny_alias: str, tiny_model: Path
) -> None:
    config = json.loads((tiny_model / "config.json").read_text(encoding="utf-8"))
    entry = listing(api_server, caller)[tiny_alias]
    assert entry["max_model_len"] == config["max_position_embeddings"]
    assert entry["parent"] is None

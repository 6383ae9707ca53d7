"""Model aliases: weighted canaries, LoRA adapters addressed upstream, names that clash."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

import openai
import pytest

from appliance.errors import InvalidRequest, NotFound, UpstreamUnavailable
from appliance.services import Services
from appliance.upstream.aliases import (
    TargetSpec,
    add_alias,
    get_alias,
    list_aliases,
    parse_target,
    set_alias_weights,
    target_key,
)
from appliance.upstream.registry import add_model, pick_target, resolve_route
from tests.api import conftest as api_fixtures
from tests.api.conftest import Caller
from tests.conftest import LiveServer, unique
from tests.upstream.test_pool import Stub

api_server = api_fixtures.api_server
make_caller = api_fixtures.make_caller


@pytest.fixture(scope="module")
def echo() -> Iterator[Stub]:
    """A stand-in upstream; its ``models`` list records the ``model`` each request carried."""
    stub = Stub("echo")
    yield stub
    stub.stop()


@pytest.fixture()
def base(pg_services: Services, echo: Stub) -> str:
    name = unique("base")
    with pg_services.db.session() as session:
        add_model(session, name, upstream_urls=[echo.url], served_name="base-served")
    return name


def test_weighted_canary_split(pg_services: Services, base: str) -> None:
    name = unique("canary")
    with pg_services.db.session() as session:
        add_alias(session, name, [(base, None, 90, "v1"), (base, "lora-v2", 10, "v2")])
    with pg_services.db.session() as session:
        alias = get_alias(session, name)
        rng = random.Random(42)
        draws = Counter(pick_target(alias, rng).version for _ in range(2000))
        assert 0.87 < draws["v1"] / 2000 < 0.93
        # the request path draws the same way
        rng = random.Random(42)
        routes = [resolve_route(session, name, rng=rng) for _ in range(200)]
    shares = Counter(route.version for route in routes)
    assert shares["v1"] + shares["v2"] == 200 and 160 <= shares["v1"] <= 195
    v2 = next(route for route in routes if route.version == "v2")
    assert (v2.model, v2.served_name, v2.base_model, v2.adapter) == (
        name,
        "lora-v2",
        base,
        "lora-v2",
    )
    assert v2.audit_fields() == {
        "base_model": base,
        "alias": name,
        "adapter": "lora-v2",
        "version": "v2",
    }
    v1 = next(route for route in routes if route.version == "v1")
    assert (v1.served_name, v1.adapter) == ("base-served", None)


def test_moving_the_weights(pg_services: Services, base: str) -> None:
    name = unique("canary")
    with pg_services.db.session() as session:
        add_alias(session, name, [TargetSpec(base, None, 100, "v1"), TargetSpec(base, "l2", 0)])
    with pg_services.db.session() as session:
        assert {resolve_route(session, name).version for _ in range(30)} == {"v1"}
        set_alias_weights(session, name, {"v1": 0, f"{base}+l2": 5})
    with pg_services.db.session() as session:
        assert {resolve_route(session, name).adapter for _ in range(30)} == {"l2"}
        alias = get_alias(session, name)
        assert [(target_key(t), t.weight) for t in alias.targets] == [
            (base, 0),
            (f"{base}+l2", 5),
        ]
        assert name in [a.name for a in list_aliases(session)]
        with pytest.raises(InvalidRequest, match="at least one target needs a weight"):
            set_alias_weights(session, name, {f"{base}+l2": 0})
        with pytest.raises(InvalidRequest, match="matches no target"):
            set_alias_weights(session, name, {"v9": 1})


def test_unknown_names_are_404(pg_services: Services) -> None:
    with pg_services.db.session() as session, pytest.raises(NotFound) as caught:
        resolve_route(session, "no-such-model-or-alias")
    assert caught.value.message == "The model 'no-such-model-or-alias' does not exist."


def test_names_may_not_clash(pg_services: Services, base: str, echo: Stub) -> None:
    name = unique("alias")
    with pg_services.db.session() as session:
        add_alias(session, name, [(base, None, 1, "")])
    with pg_services.db.session() as session:
        with pytest.raises(InvalidRequest, match="already the name of a model"):
            add_alias(session, base, [(base, None, 1, "")])
        with pytest.raises(InvalidRequest, match="already exists"):
            add_alias(session, name, [(base, None, 1, "")])
        with pytest.raises(InvalidRequest, match="already the name of a model alias"):
            add_model(session, name, upstream_urls=[echo.url])


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([], "at least one target"),
        ([("missing-model", None, 1, "")], "is not registered"),
        ([("BASE", None, 0, ""), ("BASE", "a", 0, "")], "weight above 0"),
        ([("BASE", None, -1, "")], "whole number"),
        ([("BASE", None, True, "")], "whole number"),
        ([("BASE", "bad adapter", 1, "")], "adapter"),
        ([("BASE", None, 1, "v1"), ("BASE", "a", 1, "v1")], "'v1' is given more than once"),
        ([("BASE", None, 1, ""), ("BASE", None, 1, "x")], "given more than once"),
        ([("BASE",)], None),
    ],
)
def test_invalid_aliases_are_refused(
    pg_services: Services, base: str, targets: list[tuple[object, ...]], message: str | None
) -> None:
    targets = [tuple(base if v == "BASE" else v for v in t) for t in targets]
    with pg_services.db.session() as session:
        if message is None:  # (model,) alone is valid: weight 100, no adapter
            assert add_alias(session, unique("ok"), targets).targets[0].weight == 100
            return
        with pytest.raises(InvalidRequest, match=message):
            add_alias(session, unique("bad"), targets)
        with pytest.raises(InvalidRequest, match="alias name"):
            add_alias(session, "no spaces", [(base,)])


def test_parse_target() -> None:
    assert parse_target("deepseek-r1:7b=90") == TargetSpec("deepseek-r1:7b", None, 90, "")
    assert parse_target("m+sql-lora=10@v2") == TargetSpec("m", "sql-lora", 10, "v2")
    for bad in ("m", "=5", "m=x"):
        with pytest.raises(InvalidRequest):
            parse_target(bad)


def test_alias_with_disabled_targets_is_unavailable(pg_services: Services, base: str) -> None:
    name = unique("alias")
    with pg_services.db.session() as session:
        alias = add_alias(session, name, [(base, None, 1, "")])
        alias.targets[0].model.enabled = False
        with pytest.raises(UpstreamUnavailable, match="no enabled target"):
            resolve_route(session, name)
        session.rollback()


def test_adapter_name_is_sent_upstream_through_the_gateway(
    api_server: LiveServer,
    make_caller: Callable[..., Caller],
    pg_services: Services,
    base: str,
    echo: Stub,
) -> None:
    name = unique("support-bot")
    with pg_services.db.session() as session:
        add_alias(session, name, [(base, "support-lora", 1, "v3")])
    client = openai.OpenAI(
        base_url=f"{api_server.url}/v1", api_key=make_caller(role="app").key, max_retries=0
    )
    echo.models.clear()
    answer = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.model == name
    chunks = list(
        client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert {chunk.model for chunk in chunks} == {name}
    assert echo.models == ["support-lora", "support-lora"]
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(
            model=unique("nope"), messages=[{"role": "user", "content": "hi"}]
        )


def test_models_endpoint_lists_aliases_the_key_may_call(
    api_server: LiveServer,
    make_caller: Callable[..., Caller],
    pg_services: Services,
    base: str,
) -> None:
    name = unique("listed")
    with pg_services.db.session() as session:
        add_alias(session, name, [(base, "lora-a", 1, "v1")])
    everything = make_caller(role="app")
    scoped = make_caller(role="app", models=f"{base}")
    listed = {
        m.id
        for m in openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=everything.key)
        .models.list()
        .data
    }
    assert {name, base} <= listed
    narrow = {
        m.id
        for m in openai.OpenAI(base_url=f"{api_server.url}/v1", api_key=scoped.key)
        .models.list()
        .data
    }
    assert base in narrow and name not in narrow

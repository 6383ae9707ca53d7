"""LoRA adapters on the built-in engine: vLLM's runtime load/unload protocol over HTTP,
per-request adapter selection checked against peft offline, and the rollout client."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

from appliance.engine.adapters import LoraOptions
from appliance.engine.server import EXTENSION, create_app
from appliance.errors import ConfigError, UpstreamUnavailable
from appliance.upstream import lora as client
from tests import timing
from tests.conftest import LiveServer

pytestmark = pytest.mark.engine

BASE = "tiny"
PROMPT = "The appliance"
MESSAGES = [{"role": "user", "content": "你好! Say something."}]
MAX_TOKENS = 16


# ------------------------------------------------------------------ adapters made with peft


def _load_base(model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    from appliance.engine.generation import quiet_progress_bars

    with quiet_progress_bars():
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def _make_adapter(base: Any, target: Path, *, r: int, modules: list[str], seed: int) -> Path:
    """A LoRA whose B matrices are random (peft starts them at zero), so it changes the output."""
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers deprecations that peft triggers
        model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, target_modules=modules))
        generator = torch.Generator().manual_seed(seed)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data = torch.randn(param.shape, generator=generator) * 0.5
        model.save_pretrained(str(target))
        model.unload()
    return target


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    base = _load_base(tiny_model)
    made = {
        "one": _make_adapter(base, root / "one", r=4, modules=["q_proj", "v_proj"], seed=1),
        "two": _make_adapter(base, root / "two", r=8, modules=["v_proj", "down_proj"], seed=2),
        "big": _make_adapter(base, root / "big", r=16, modules=["q_proj"], seed=3),
    }
    other = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=base.config.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    made["alien"] = _make_adapter(other, root / "alien", r=4, modules=["q_proj"], seed=4)
    made["gpt2"] = root / "gpt2"
    shutil.copytree(made["one"], made["gpt2"])
    config = json.loads((made["gpt2"] / "adapter_config.json").read_text())
    config["target_modules"] = ["c_attn"]
    (made["gpt2"] / "adapter_config.json").write_text(json.dumps(config))
    made["empty"] = root / "empty"
    made["empty"].mkdir()
    return made


@pytest.fixture(scope="module")
def offline(tiny_model: Path, adapters: dict[str, Path]) -> Any:
    """Greedy completions computed by peft itself (``PeftModel.from_pretrained``), cached."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    done: dict[str | None, str] = {}

    def complete(adapter: str | None) -> str:
        if adapter not in done:
            model = _load_base(tiny_model)
            if adapter is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # transformers' own, via peft
                    model = PeftModel.from_pretrained(model, adapters[adapter]).eval()
            eos = set(model.config.eos_token_id)
            ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
            out: list[int] = []
            with torch.inference_mode():
                for _ in range(MAX_TOKENS):
                    logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1]
                    token = int(torch.argmax(logits))
                    if token in eos:
                        break
                    out.append(token)
            done[adapter] = str(tokenizer.decode(out, skip_special_tokens=True))
        return done[adapter]

    return complete


# ------------------------------------------------------------------ the served engine


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[LiveServer]:
    options = LoraOptions(max_loras=2, max_lora_rank=8, runtime_updates=True)
    live = LiveServer(create_app(tiny_model, BASE, options))
    yield live
    live.stop()
    live.app.extensions[EXTENSION].engine.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def sdk(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as c:
        yield c


@pytest.fixture(autouse=True)
def nothing_loaded_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts and ends with the base model alone."""
    yield
    if "server" in request.fixturenames:
        engine = request.getfixturevalue("server").app.extensions[EXTENSION].engine
        for adapter in engine.adapters.listed():
            engine.adapters.unload(adapter.name)


def _engine(server: LiveServer) -> Any:
    return server.app.extensions[EXTENSION].engine  # type: ignore[attr-defined]


def load(server: LiveServer, name: str, path: Path | str, **extra: Any) -> httpx.Response:
    body = {"lora_name": name, "lora_path": str(path), **extra}
    return httpx.post(f"{server.url}/v1/load_lora_adapter", json=body, timeout=timing.scaled(30))


def unload(server: LiveServer, name: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/unload_lora_adapter", json={"lora_name": name}, timeout=timing.scaled(30)
    )


def complete(sdk: openai.OpenAI, model: str, **extra: Any) -> str:
    reply = sdk.completions.create(
        model=model, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0, **extra
    )
    return reply.choices[0].text


def model_ids(sdk: openai.OpenAI) -> list[str]:
    return [m.id for m in sdk.models.list().data]


def peft_layers(server: LiveServer) -> int:
    from peft.tuners.tuners_utils import BaseTunerLayer

    model = _engine(server).model
    return sum(isinstance(m, BaseTunerLayer) for m in model.modules())


# ------------------------------------------------------------------ load, serve, unload


def test_an_adapter_generates_as_peft_does_and_the_base_stays_the_base(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path], offline: Any
) -> None:
    base_before = complete(sdk, BASE)
    assert base_before == offline(None)

    response = load(server, "one", adapters["one"])
    assert response.status_code == 200
    assert response.text == "Success: LoRA adapter 'one' added successfully."

    with_adapter = complete(sdk, "one")
    assert with_adapter == offline("one") != base_before
    assert complete(sdk, BASE) == base_before
    streamed = sdk.completions.create(
        model="one", prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == with_adapter

    chat = {"messages": MESSAGES, "max_tokens": 8, "temperature": 0}
    adapted_chat = sdk.chat.completions.create(model="one", **chat)  # type: ignore[call-overload]
    base_chat = sdk.chat.completions.create(model=BASE, **chat)  # type: ignore[call-overload]
    assert adapted_chat.model == "one"
    assert adapted_chat.choices[0].message.content != base_chat.choices[0].message.content

    vectors = {
        m: sdk.embeddings.create(model=m, input="你好, world").data[0].embedding
        for m in (BASE, "one")
    }
    assert vectors[BASE] != vectors["one"]
    counted = httpx.post(f"{server.url}/tokenize", json={"model": "one", "prompt": PROMPT})
    assert counted.status_code == 200 and counted.json()["count"] > 0


def test_models_lists_adapters_with_parent_and_root(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path]
) -> None:
    assert load(server, "one", adapters["one"]).status_code == 200
    cards = httpx.get(f"{server.url}/v1/models").json()["data"]
    assert [c["id"] for c in cards] == [BASE, "one"]
    assert cards[1]["object"] == "model"
    assert cards[1]["parent"] == BASE
    assert cards[1]["root"] == str(adapters["one"])


def test_unload_makes_the_name_404_again_and_restores_the_plain_model(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path], offline: Any
) -> None:
    assert load(server, "one", adapters["one"]).status_code == 200
    assert peft_layers(server) > 0
    response = unload(server, "one")
    assert response.status_code == 200
    assert response.text == "Success: LoRA adapter 'one' removed successfully."
    with pytest.raises(openai.NotFoundError) as info:
        complete(sdk, "one")
    assert info.value.code == "model_not_found"
    assert "The model 'one' does not exist." in str(info.value)
    assert model_ids(sdk) == [BASE]
    assert complete(sdk, BASE) == offline(None)
    assert peft_layers(server) == 0  # the base path is the plain transformers model again


def test_load_inplace_replaces_the_adapter(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path], offline: Any
) -> None:
    assert load(server, "one", adapters["one"]).status_code == 200
    assert load(server, "one", adapters["two"], load_inplace=True).status_code == 200
    assert complete(sdk, "one") == offline("two")
    assert model_ids(sdk) == [BASE, "one"]


# ------------------------------------------------------------------ errors change nothing


def _vllm_error(response: httpx.Response, status: int, type_: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {
        "error": {"message": message, "type": type_, "param": None, "code": status}
    }


def test_load_errors_are_vllms_and_leave_the_engine_unchanged(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path], offline: Any
) -> None:
    assert load(server, "one", adapters["one"]).status_code == 200
    before = (model_ids(sdk), peft_layers(server))

    _vllm_error(
        load(server, "one", adapters["two"]),
        400,
        "BadRequestError",
        "The lora adapter 'one' has already been loaded. If you want to load the adapter in "
        "place, set 'load_inplace' to True.",
    )
    for path in ("/no/such/adapter", adapters["empty"]):
        _vllm_error(
            load(server, "x", path),
            404,
            "NotFoundError",
            f"Loading lora x failed: No adapter found for {path}",
        )
    _vllm_error(
        load(server, "x", adapters["big"]),
        400,
        "BadRequestError",
        "LoRA rank 16 is greater than max_lora_rank 8.",
    )
    wrong_targets = load(server, "x", adapters["gpt2"])
    assert wrong_targets.status_code == 400
    assert "expected target modules in" in wrong_targets.json()["error"]["message"]
    assert "['c_attn']" in wrong_targets.json()["error"]["message"]
    alien = load(server, "x", adapters["alien"])
    assert alien.status_code == 400
    assert "does not fit the served model" in alien.json()["error"]["message"]
    _vllm_error(
        load(server, "", adapters["one"]),
        400,
        "BadRequestError",
        "Both 'lora_name' and 'lora_path' must be provided.",
    )
    missing = httpx.post(f"{server.url}/v1/load_lora_adapter", json={"lora_name": "x"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "lora_path"
    malformed = httpx.post(
        f"{server.url}/v1/load_lora_adapter",
        content=b'{"lora_name": "x", ',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]["message"]

    assert (model_ids(sdk), peft_layers(server)) == before
    assert complete(sdk, "one") == offline("one")
    assert complete(sdk, BASE) == offline(None)
    with pytest.raises(openai.NotFoundError):
        complete(sdk, "x")


def test_more_adapters_than_max_loras_is_refused(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path]
) -> None:
    assert load(server, "one", adapters["one"]).status_code == 200
    assert load(server, "two", adapters["two"]).status_code == 200
    _vllm_error(
        load(server, "three", adapters["one"]),
        400,
        "BadRequestError",
        "Loading lora three failed: 2 adapters are loaded and max_loras is 2; unload one first.",
    )
    assert model_ids(sdk) == [BASE, "one", "two"]


def test_unload_errors(server: LiveServer) -> None:
    _vllm_error(
        unload(server, "ghost"), 404, "NotFoundError", "The lora adapter 'ghost' cannot be found."
    )
    _vllm_error(
        unload(server, ""),
        400,
        "BadRequestError",
        "'lora_name' needs to be provided to unload a LoRA adapter.",
    )


# ------------------------------------------------------------------ concurrency


def test_concurrent_base_and_adapter_requests_match_sequential_ones(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path]
) -> None:
    assert load(server, "one", adapters["one"]).status_code == 200
    assert load(server, "two", adapters["two"]).status_code == 200
    jobs = [(m, seed) for seed in (1, 2) for m in (BASE, "one", "two")]

    def run(job: tuple[str, int]) -> str:
        return complete(sdk, job[0], seed=job[1])

    sequential = [run(job) for job in jobs]
    assert len(set(sequential[:3])) == 3  # base, one and two all differ
    with ThreadPoolExecutor(len(jobs)) as pool:
        assert list(pool.map(run, jobs)) == sequential


def test_load_and_unload_while_generations_run(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path], offline: Any
) -> None:
    assert load(server, "one", adapters["one"]).status_code == 200

    def run(model: str, stream: bool) -> Any:
        return sdk.completions.create(
            model=model, prompt=PROMPT, max_tokens=48, temperature=0, stream=stream
        )

    expected = {m: run(m, False).choices[0].text for m in (BASE, "one")}
    streams = {m: run(m, True) for m in (BASE, "one")}
    texts = {m: next(iter(s)).choices[0].text for m, s in streams.items()}
    assert load(server, "two", adapters["two"]).status_code == 200
    assert unload(server, "one").status_code == 200  # "one" is still generating
    assert model_ids(sdk) == [BASE, "two"]
    for m, stream in streams.items():
        texts[m] += "".join(c.choices[0].text for c in stream if c.choices)
    assert texts == expected
    assert complete(sdk, "two") == offline("two")
    with pytest.raises(openai.NotFoundError):
        complete(sdk, "one")


# ------------------------------------------------------------------ start-up options


def test_preloaded_adapters_without_runtime_updates(
    tiny_model: Path, adapters: dict[str, Path], offline: Any
) -> None:
    options = LoraOptions(modules=(("one", str(adapters["one"])),))
    app = create_app(tiny_model, BASE, options)
    try:
        http = app.test_client()
        cards = http.get("/v1/models").get_json()["data"]
        assert [(c["id"], c.get("parent")) for c in cards] == [(BASE, None), ("one", BASE)]
        body = {"model": "one", "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}
        assert http.post("/v1/completions", json=body).get_json()["choices"][0]["text"] == (
            offline("one")
        )
        for route in ("load_lora_adapter", "unload_lora_adapter"):
            response = http.post(f"/v1/{route}", json={"lora_name": "one", "lora_path": "x"})
            assert response.status_code == 404  # as vLLM without the environment variable
            assert response.get_json()["error"]["message"] == f"Invalid URL (POST /v1/{route})."
    finally:
        app.extensions[EXTENSION].engine.close()


def test_a_bad_preloaded_adapter_stops_start_up(
    tiny_model: Path, adapters: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError, match="LoRA rank 16 is greater than max_lora_rank 8"):
        create_app(
            tiny_model, BASE, LoraOptions(modules=(("big", str(adapters["big"])),), max_lora_rank=8)
        )
    with pytest.raises(ConfigError, match="max_loras is 1"):
        LoraOptions(modules=(("a", "/a"), ("b", "/b")))


# ------------------------------------------------------------------ the rollout's client


def test_client_load_and_unload_are_idempotent(
    server: LiveServer, sdk: openai.OpenAI, adapters: dict[str, Path], offline: Any
) -> None:
    client.load_adapter(server.url, "one", str(adapters["one"]), timeout=timing.scaled(30))
    client.load_adapter(f"{server.url}/v1/", "one", str(adapters["one"]), timeout=timing.scaled(30))
    assert complete(sdk, "one") == offline("one")
    with pytest.raises(client.AdapterError, match="has already been loaded") as info:
        client.load_adapter(server.url, "one", str(adapters["two"]), timeout=timing.scaled(30))
    assert info.value.upstream_status == 400
    client.unload_adapter(server.url, "one", timeout=timing.scaled(30))
    client.unload_adapter(server.url, "one", timeout=timing.scaled(30))
    assert model_ids(sdk) == [BASE]


def test_client_raises_the_upstreams_message(server: LiveServer, tiny_model: Path) -> None:
    with pytest.raises(client.AdapterError) as info:
        client.load_adapter(server.url, "x", "/no/such/adapter", timeout=timing.scaled(30))
    assert info.value.message == "Loading lora x failed: No adapter found for /no/such/adapter"
    assert info.value.upstream_status == 404

    closed = LiveServer(create_app(tiny_model, BASE))  # runtime updating off
    try:
        with pytest.raises(client.AdapterError, match="Invalid URL"):
            client.unload_adapter(closed.url, "one", timeout=timing.scaled(30))
    finally:
        closed.stop()
        closed.app.extensions[EXTENSION].engine.close()  # type: ignore[attr-defined]
    with pytest.raises(UpstreamUnavailable):
        client.load_adapter(closed.url, "x", "/x", timeout=timing.scaled(5))

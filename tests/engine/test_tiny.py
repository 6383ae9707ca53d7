"""The tiny model and the generation loop, against a real (random-weight) model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from appliance.engine.generation import Engine
from appliance.engine.protocol import SamplingParams
from appliance.engine.tiny import make_tiny
from appliance.errors import InvalidRequest

pytestmark = pytest.mark.engine

MIXED = "Hello, 世界! The appliance 保护个人数据 on premises. 数字 42 🙂"


@pytest.fixture(scope="session")
def tiny_dir(tiny_model: Path) -> Path:
    return tiny_model


@pytest.fixture(scope="module")
def engine(tiny_dir: Path) -> Iterator[Engine]:
    loaded = Engine(tiny_dir)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def prompt(engine: Engine) -> str:
    return engine.chat_prompt([{"role": "user", "content": "你好, tell me about the appliance."}])


def run(engine: Engine, prompt: str, **params: object) -> tuple[list[str], object]:
    gen = engine.generate(prompt, SamplingParams(**params))  # type: ignore[arg-type]
    return list(gen), gen


def test_files_and_config(tiny_dir: Path) -> None:
    assert (tiny_dir / "model.safetensors").is_file()
    assert (tiny_dir / "generation_config.json").is_file()
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["model_type"] == "llama"


def test_loads_and_round_trips_mixed_text(tiny_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer(MIXED, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == MIXED
    assert len(ids) < len(MIXED.encode()), "BPE merges should compress the text"


def test_chat_template(engine: Engine) -> None:
    text = engine.chat_prompt(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]
    )
    assert text == "<s><|system|>\nBe brief.<|end|>\n<|user|>\n你好<|end|>\n<|assistant|>\n"
    assert engine.encode(text)[0] == engine.tokenizer.bos_token_id


def test_make_tiny_refuses_non_empty_target(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_tiny(tmp_path)
    assert (tmp_path / "x").read_text() == "keep me"


def test_make_tiny_is_deterministic(tiny_dir: Path, tmp_path: Path) -> None:
    again = make_tiny(tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes(), name


def test_same_seed_same_text(engine: Engine, prompt: str) -> None:
    first, _ = run(engine, prompt, seed=7, max_tokens=24)
    second, _ = run(engine, prompt, seed=7, max_tokens=24)
    other, _ = run(engine, prompt, seed=8, max_tokens=24)
    assert "".join(first) == "".join(second)
    assert "".join(first) != "".join(other)


def test_concurrent_requests_match_sequential(engine: Engine, prompt: str) -> None:
    def text(seed: int) -> str:
        return engine.generate(prompt, SamplingParams(seed=seed, max_tokens=12)).text()

    expected = [text(seed) for seed in range(4)]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(text, range(4))) == expected


def test_greedy_is_deterministic_and_matches_tiny_top_p(engine: Engine, prompt: str) -> None:
    greedy, _ = run(engine, prompt, temperature=0, max_tokens=16, seed=1)
    again, _ = run(engine, prompt, temperature=0, max_tokens=16, seed=2)
    nucleus, _ = run(engine, prompt, temperature=1.0, top_p=1e-6, max_tokens=16, seed=3)
    assert greedy == again == nucleus


def test_max_tokens_and_usage(engine: Engine, prompt: str) -> None:
    deltas, gen = run(engine, prompt, seed=3, max_tokens=20)
    assert gen.finish_reason == "length"
    assert gen.completion_tokens == 20 == len(gen.completion_ids)
    assert gen.prompt_tokens == len(engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert "".join(deltas) == engine.decode(gen.completion_ids)


def test_incremental_text_is_valid_for_chinese(engine: Engine) -> None:
    chinese = engine.chat_prompt(
        [{"role": "user", "content": "请用中文回答审计日志保护个人数据。"}]
    )
    deltas, gen = run(engine, chinese, seed=11, max_tokens=120)
    assert "".join(deltas) == engine.decode(gen.completion_ids)
    assert all(deltas), "no empty deltas"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(deltas))


def test_stop_string_cuts_before_it(engine: Engine, prompt: str) -> None:
    full = "".join(run(engine, prompt, seed=5, max_tokens=60)[0])
    clean = [i for i in range(8, len(full) - 3) if "\ufffd" not in full[i : i + 3]]
    stop = full[clean[0] : clean[0] + 3]
    deltas, gen = run(engine, prompt, seed=5, max_tokens=60, stop=["never-there", stop])
    text = "".join(deltas)
    assert text == full[: full.index(stop)]
    assert stop not in text
    assert gen.finish_reason == "stop"


def test_stop_string_spanning_tokens(engine: Engine, prompt: str) -> None:
    _, gen = run(engine, prompt, seed=9, max_tokens=40)
    full = engine.decode(gen.completion_ids)
    bounds = [len(engine.decode(gen.completion_ids[:j])) for j in range(1, 40)]
    cut = next(b for b in bounds if b > 4 and "\ufffd" not in full[b - 2 : b + 2])
    stop = full[cut - 2 : cut + 2]
    deltas, gen = run(engine, prompt, seed=9, max_tokens=40, stop=stop)
    assert "".join(deltas) == full[: full.index(stop)]
    assert gen.finish_reason == "stop"


def test_default_max_tokens_fits_the_context(engine: Engine) -> None:
    long_prompt = "审计 " * 240
    gen = engine.generate(long_prompt, SamplingParams(temperature=0))
    assert gen.prompt_tokens + gen.max_tokens == engine.max_context
    assert len(gen.text()) > 0 and gen.completion_tokens <= gen.max_tokens
    with pytest.raises(RuntimeError):
        list(gen)


def test_context_length_guard(engine: Engine) -> None:
    with pytest.raises(InvalidRequest) as info:
        engine.generate("hello " * 100, SamplingParams(max_tokens=engine.max_context))
    assert info.value.status == 400
    assert "maximum context length is 512 tokens" in info.value.message

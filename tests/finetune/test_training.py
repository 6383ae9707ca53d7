"""LoRA training on the tiny model: it learns the synthetic task, resumes after SIGKILL to
the same adapter as an uninterrupted run, stops cleanly when asked, refuses bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from appliance.engine.generation import default_threads
from appliance.errors import FinetuneError
from appliance.finetune.chat import load_base, pick_device, quiet_peft
from appliance.finetune.evaluation import exact_match, perplexity
from appliance.finetune.policy import Lora, Training
from appliance.finetune.training import Progress, TrainingStopped, TrainResult, train_lora
from tests import timing
from tests.finetune import synthetic

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SMALL = Training(
    learning_rate=1e-2,
    warmup_ratio=0.2,
    epochs=2,
    batch_size=4,
    gradient_accumulation=2,
    checkpoint_every=2,
    max_seq_len=64,
)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "finetune-adapters"


@pytest.fixture(scope="module")
def good(tiny_model: Path, adapters: Path) -> TrainResult:
    return synthetic.trained(tiny_model, adapters, "good")


def adapter_weights(adapter_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def test_training_lowers_the_loss_and_raises_heldout_exact_match(
    tiny_model: Path, good: TrainResult
) -> None:
    from peft import PeftModel

    records = synthetic.training_records("good")
    per_step = synthetic.TRAINING.batch_size * synthetic.TRAINING.gradient_accumulation
    assert good.steps == math.ceil(len(records) / per_step) * synthetic.TRAINING.epochs
    assert len(good.losses) == good.steps and good.resumed_from is None
    first, last = sum(good.losses[:5]) / 5, sum(good.losses[-5:]) / 5
    assert last < first / 10, (first, last)
    assert good.tokens > 0 and good.tokens_per_s > 0
    assert set(good.per_source_loss) == {"chat", "email", "canary"}
    assert all(0 < loss < first for loss in good.per_source_loss.values())

    # Standard PEFT format, with the policy's settings.
    config = json.loads((good.adapter_dir / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (synthetic.LORA.r, synthetic.LORA.alpha)
    assert set(config["target_modules"]) == set(synthetic.LORA.target_modules)
    assert adapter_weights(good.adapter_dir)

    heldout = synthetic.tickets(synthetic.HELDOUT_COUNT, 0, heldout=True)
    tokenizer, model = load_base(tiny_model, pick_device())
    before = exact_match(model, tokenizer, heldout), perplexity(model, tokenizer, heldout)
    with quiet_peft():
        tuned = PeftModel.from_pretrained(model, good.adapter_dir).eval()
    after = exact_match(tuned, tokenizer, heldout), perplexity(tuned, tokenizer, heldout)
    print(
        f"held-out exact match {before[0]:.2f} -> {after[0]:.2f}, perplexity "
        f"{before[1]:.1f} -> {after[1]:.3f}, loss {first:.3f} -> {last:.3f}, "
        f"{good.tokens_per_s:.0f} tokens/s"
    )
    assert after[0] >= before[0] + 0.5
    assert after[1] < before[1] / 100


CHILD = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from appliance.finetune.training import train_lora
    from tests.finetune import synthetic

    torch.set_num_threads(int(sys.argv[3]))
    train_lora(Path(sys.argv[1]), synthetic.training_records("good"), Path(sys.argv[2]),
               lora=synthetic.LORA, training=synthetic.TRAINING, seed=0)
    """
)


def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_result(
    tiny_model: Path, good: TrainResult, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tiny_model), str(work), str(default_threads())],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    started, deadline = time.monotonic(), timing.deadline(120)
    while not list((work / "checkpoints").glob("step-*")):
        assert child.poll() is None, "the training process ended before its first checkpoint"
        assert time.monotonic() < deadline, f"no checkpoint within {timing.scaled(120):.0f} s"
        time.sleep(0.02)
    print(f"first checkpoint after {time.monotonic() - started:.1f} s")
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=timing.scaled(30)) == -signal.SIGKILL
    assert not (work / "adapter").exists()

    torch.set_num_threads(default_threads())
    resumed = train_lora(
        tiny_model,
        synthetic.training_records("good"),
        work,
        lora=synthetic.LORA,
        training=synthetic.TRAINING,
        seed=0,
    )
    assert resumed.resumed_from is not None
    assert 0 < resumed.resumed_from < good.steps
    assert resumed.steps == good.steps and resumed.tokens == good.tokens
    # Same thread count in both processes: the same arithmetic, bit for bit.
    assert resumed.losses == good.losses
    assert resumed.per_source_loss == good.per_source_loss
    ours, theirs = adapter_weights(resumed.adapter_dir), adapter_weights(good.adapter_dir)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(tensor, theirs[name]) for name, tensor in ours.items())
    assert len(list((work / "checkpoints").glob("step-*"))) <= 2


def small_records() -> list[dict]:
    return synthetic.tickets(24, 3)


def test_should_stop_checkpoints_then_a_second_call_resumes_and_a_third_returns(
    tiny_model: Path, tmp_path: Path
) -> None:
    seen: list[Progress] = []
    with pytest.raises(TrainingStopped) as stopped:
        train_lora(
            tiny_model,
            small_records(),
            tmp_path,
            lora=synthetic.LORA,
            training=SMALL,
            progress=seen.append,
            should_stop=lambda: len(seen) >= 2,  # asked before step 3 is reported: stop
        )
    assert stopped.value.step == 3
    assert [p.step for p in seen] == [1, 2, 3]
    assert {p.total_steps for p in seen} == {6} and seen[-1].eta_s is not None
    assert [p.tokens for p in seen] == sorted(p.tokens for p in seen)
    assert (tmp_path / "checkpoints" / "step-00000003").is_dir()
    assert not (tmp_path / "adapter").exists()
    (tmp_path / "checkpoints" / ".tmp-step-00000004-1").mkdir()  # a write cut short

    result = train_lora(tiny_model, small_records(), tmp_path, lora=synthetic.LORA, training=SMALL)
    assert result.resumed_from == 3 and result.steps == 6 and len(result.losses) == 6
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-00000004",
        "step-00000006",
    ]
    again = train_lora(tiny_model, small_records(), tmp_path, lora=synthetic.LORA, training=SMALL)
    assert again.resumed_from == 6 and again.losses == result.losses

    with pytest.raises(FinetuneError, match="checkpoints of another run"):
        train_lora(
            tiny_model, small_records(), tmp_path, lora=synthetic.LORA, training=SMALL, seed=1
        )


def test_an_incremental_run_continues_from_the_previous_adapter(
    tiny_model: Path, adapters: Path, tmp_path: Path
) -> None:
    good = synthetic.trained(tiny_model, adapters, "good")
    one_epoch = SMALL.model_copy(update={"epochs": 1})

    def first_loss(work: Path, **extra: object) -> float:
        result = train_lora(
            tiny_model, small_records(), work, lora=synthetic.LORA, training=one_epoch, **extra
        )
        return result.losses[0]

    fresh = first_loss(tmp_path / "fresh")
    continued = first_loss(tmp_path / "continued", init_adapter_dir=good.adapter_dir)
    assert continued < 0.25 * fresh  # it starts where the promoted version left off
    # An adapter of another rank cannot be continued: the run starts from scratch.
    other_rank = synthetic.LORA.model_copy(update={"r": 4, "alpha": 8})
    result = train_lora(
        tiny_model,
        small_records(),
        tmp_path / "other-rank",
        lora=other_rank,
        training=one_epoch,
        init_adapter_dir=good.adapter_dir,
    )
    assert result.losses[0] > 0.5 * fresh


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"records": []}, "no training records"),
        ({"records": [{"messages": "hello"}]}, r"record 0: 'messages' must be a non-empty list"),
        (
            {"records": [{"messages": [{"role": "user", "content": "hi"}]}]},
            "record 0: no assistant message",
        ),
        (
            {"records": [{"messages": [{"role": "narrator", "content": "hi"}]}]},
            "record 0: the chat template refused it: Unsupported role",
        ),
        (
            {"lora": Lora(target_modules=("q_proj", "qkv", "c_attn"))},
            r"not in the model: qkv, c_attn; the model's layers: .*down_proj.*q_proj",
        ),
        ({"base": "empty"}, r"is not a model directory \(no config.json\)"),
    ],
)
def test_bad_input_is_refused_with_a_domain_error(
    tiny_model: Path, tmp_path: Path, change: dict, error: str
) -> None:
    base = tiny_model
    if change.get("base") == "empty":
        base = tmp_path / "not-a-model"
        base.mkdir()
    with pytest.raises(FinetuneError, match=error):
        train_lora(
            base,
            change.get("records", small_records()),
            tmp_path / "work",
            lora=change.get("lora", synthetic.LORA),
            training=SMALL,
        )
    assert not (tmp_path / "work" / "adapter").exists()

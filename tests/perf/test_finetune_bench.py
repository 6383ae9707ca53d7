"""Fine-tune benchmark: LoRA training throughput of the tiny model on CPU, against plain
full-model training and a forward pass on the same batches, in one run. Prints a table.

Run: ``.venv/bin/python -m pytest -m perf tests/perf/test_finetune_bench.py -s``.

Workload: one epoch of the synthetic support-ticket task (tests/finetune/synthetic.py:
240 chat records, 8 per step, the test policy's LoRA: r=16 on all seven projections).
Tokens are the non-padding tokens of the batches; every figure is the best of
``REPEATS`` interleaved runs on ``default_threads()`` torch threads (absolute numbers on a
shared machine are noisy; the ratios compare runs made side by side). The baselines run
the same batches through the same model without peft: full fine-tuning (forward, backward
over every weight, AdamW step) and a forward pass alone. ``train_lora`` is measured end to
end as a caller sees it (its tokens/s: loading excluded, checkpoints included); the checkpoint
cost is the difference between checkpointing every step and never.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from appliance.engine.generation import default_threads
from appliance.finetune.chat import collate, encode_records, load_base, token_losses
from appliance.finetune.training import train_lora
from tests.finetune import synthetic

pytestmark = [pytest.mark.perf, pytest.mark.engine]

REPEATS = 3
RECORDS = 240


def test_lora_training_throughput_against_full_training(tiny_model: Path, tmp_path: Path) -> None:
    threads = default_threads()
    torch.set_num_threads(threads)
    records = synthetic.tickets(RECORDS, 0)
    training = synthetic.TRAINING.model_copy(update={"epochs": 1, "checkpoint_every": 10_000})
    device = torch.device("cpu")
    tokenizer, model = load_base(tiny_model, device)
    examples = encode_records(tokenizer, records, training.max_seq_len)
    batches = [
        collate(examples[i : i + training.batch_size], tokenizer.pad_token_id, device)
        for i in range(0, len(examples), training.batch_size)
    ]
    tokens = sum(int(mask.sum()) for _, mask, _ in batches)

    def lora(checkpoint_every: int) -> Callable[[], float]:
        def run() -> float:
            work = tmp_path / "work"
            shutil.rmtree(work, ignore_errors=True)
            result = train_lora(
                tiny_model,
                records,
                work,
                lora=synthetic.LORA,
                training=training.model_copy(update={"checkpoint_every": checkpoint_every}),
            )
            assert result.tokens == tokens
            return result.tokens_per_s

        return run

    def full() -> float:
        torch.manual_seed(0)
        _, fresh = load_base(tiny_model, device)
        fresh.train()
        optimizer = torch.optim.AdamW(fresh.parameters(), lr=training.learning_rate)
        start = time.perf_counter()
        for ids, mask, labels in batches:
            optimizer.zero_grad(set_to_none=True)
            sums, counts = token_losses(fresh, ids, mask, labels)
            (sums.sum() / counts.sum()).backward()
            torch.nn.utils.clip_grad_norm_(fresh.parameters(), 1.0)
            optimizer.step()
        return tokens / (time.perf_counter() - start)

    def forward() -> float:
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            for ids, mask, labels in batches:
                token_losses(model, ids, mask, labels)
        return tokens / (time.perf_counter() - start)

    # Interleaved repeats, so that a neighbour's load hits every variant alike.
    runs = {"lora": lora(10_000), "checkpointed": lora(1), "full": full, "forward": forward}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(REPEATS):
        for name, run in runs.items():
            rates[name].append(run())
    lora_rate, checkpointed_rate, full_rate, forward_rate = (max(rates[n]) for n in runs)
    steps = math.ceil(len(examples) / training.batch_size)
    checkpoint_ms = (tokens / checkpointed_rate - tokens / lora_rate) / steps * 1000
    weights = sum(p.numel() for p in model.parameters())
    adapter = tmp_path / "work" / "adapter" / "adapter_model.safetensors"

    rows = [
        f"fine-tune throughput, tiny Llama ({weights / 1e3:.0f}k weights), CPU, "
        f"{threads} torch thread(s), {len(examples)} records = {tokens} tokens, "
        f"{steps} steps of {training.batch_size}, best of {REPEATS}",
        f"{'':<52} {'tokens/s':>10} {'vs full':>8}",
        f"{'train_lora (LoRA r=16, 7 targets, no checkpoint)':<52} "
        f"{lora_rate:>10.0f} {lora_rate / full_rate:>8.2f}",
        f"{'train_lora, a checkpoint after every step':<52} "
        f"{checkpointed_rate:>10.0f} {checkpointed_rate / full_rate:>8.2f}",
        f"{'full fine-tuning (all weights, AdamW), same batches':<52} {full_rate:>10.0f} {1:>8.2f}",
        f"{'forward pass only (no grad), same batches':<52} "
        f"{forward_rate:>10.0f} {forward_rate / full_rate:>8.2f}",
        f"checkpoint (adapter + optimizer + RNG, fsync'd, renamed): {checkpoint_ms:.1f} ms each; "
        f"adapter file {adapter.stat().st_size / 1e6:.2f} MB",
    ]
    print("\n" + "\n".join(rows))
    assert lora_rate > 0 and full_rate > 0 and forward_rate > lora_rate

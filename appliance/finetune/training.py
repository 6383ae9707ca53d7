"""LoRA training with peft on transformers: resumable, deterministic on CPU.

``train_lora`` trains a LoRA adapter on chat records (``{"messages": [...], "source": ...}``)
with the hyperparameters of ``policies/finetune.yaml`` and saves it in standard PEFT format
(``adapter_config.json`` + ``adapter_model.safetensors``) under ``work_dir/adapter``, which
vLLM loads with ``--lora-modules`` or ``load_lora_adapter``.

- Records are rendered with the model's own chat template (``chat.encode_chat``); only
  the assistant's tokens carry a loss. Each record is cut to ``max_seq_len`` tokens.
- Optimizer steps of ``batch_size`` x ``gradient_accumulation`` records, the loss averaged
  over the step's assistant tokens; AdamW, gradients clipped at norm 1; learning rate warmed
  up linearly over ``warmup_ratio`` of the steps, then cosine decay to zero.
- Every ``checkpoint_every`` optimizer steps (and at the end) a checkpoint is written to
  ``work_dir/checkpoints/step-NNNNNNNN``: adapter weights, optimizer, scheduler, RNG states,
  the epoch's data order and position, the losses so far. It is written in a temporary
  directory, synced, then renamed, so a worker killed at any moment leaves either the
  complete checkpoint or none; the last two are kept. Calling ``train_lora`` again with the
  same arguments and ``work_dir`` resumes from the last complete checkpoint and gives the
  same adapter as an uninterrupted run (bit for bit on CPU with the same thread count).
  A ``work_dir`` belongs to one run: checkpoints of other records or settings are refused.
- ``should_stop`` is asked after every optimizer step; when it says yes, a checkpoint is
  written and ``TrainingStopped`` raised (call again to resume).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from appliance.errors import FinetuneError
from appliance.finetune.chat import (
    IGNORE,
    Example,
    check_target_modules,
    collate,
    encode_records,
    load_base,
    pick_device,
    quiet_peft,
    token_losses,
)
from appliance.finetune.policy import Lora, Training

log = logging.getLogger(__name__)

ADAPTER = "adapter"
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2
MAX_GRAD_NORM = 1.0
_STEP_DIR = "step-{:08d}"


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    loss: float
    tokens: int
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    steps: int
    losses: list[float]  # one per optimizer step: mean loss over its assistant tokens
    tokens: int  # tokens (prompt and answer, no padding) trained on over all steps
    tokens_per_s: float  # in this call (a resumed call counts only what it trained)
    resumed_from: int | None  # the checkpoint's optimizer step, None for a fresh start
    per_source_loss: dict[str, float]  # last epoch, token-weighted; no source: ""


class TrainingStopped(Exception):
    """``should_stop`` said yes; the checkpoint of ``step`` is written."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training stopped after step {step} (checkpoint written)")
        self.step = step


# -- the run ------------------------------------------------------------------------------


@dataclass
class _State:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    source_loss: dict[str, float] = field(default_factory=dict)  # this epoch: sums
    source_tokens: dict[str, int] = field(default_factory=dict)


def _schedule(total: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = math.ceil(total * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    order = list(range(count))
    random.Random(f"{seed}:{epoch}").shuffle(order)  # noqa: S311 - an order, not a secret
    return order


def _fingerprint(
    base_model_dir: Path, examples: list[Example], lora: Lora, training: Training, seed: int
) -> str:
    digest = hashlib.sha256()
    digest.update((Path(base_model_dir) / "config.json").read_bytes())
    digest.update(json.dumps([lora.model_dump(), training.model_dump(), seed]).encode())
    for example in examples:
        digest.update(json.dumps([example.input_ids, example.labels, example.source]).encode())
    return digest.hexdigest()


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise FinetuneError(f"cannot read the adapter to continue from: {exc}") from None


def _continue_from(model: Any, adapter_dir: Path, lora: Lora) -> bool:
    """Load an earlier adapter's weights into the fresh one when their shapes agree."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    same_shape = config.get("r") == lora.r and sorted(config.get("target_modules") or []) == sorted(
        lora.target_modules
    )
    if not same_shape:
        log.info("the previous adapter's rank or targets differ from the policy: starting fresh")
        return False
    set_peft_model_state_dict(model, load_file(str(adapter_dir / "adapter_model.safetensors")))
    return True


def train_lora(
    base_model_dir: Path,
    records: Sequence[Mapping[str, Any]],
    work_dir: Path,
    *,
    lora: Lora,
    training: Training,
    seed: int = 0,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    init_adapter_dir: Path | None = None,
) -> TrainResult:
    """Train (or resume training) a LoRA adapter; see the module's docstring.

    ``init_adapter_dir``: an incremental run starts from the promoted adapter's weights
    (when its rank and target modules are the policy's; otherwise from scratch)."""
    from peft import LoraConfig, get_peft_model

    if not records:
        raise FinetuneError("no training records")
    work_dir = Path(work_dir)
    device = pick_device()
    tokenizer, model = load_base(base_model_dir, device)
    check_target_modules(model, lora.target_modules)
    examples = encode_records(tokenizer, records, training.max_seq_len)
    fingerprint = _fingerprint(base_model_dir, examples, lora, training, seed)
    if init_adapter_dir is not None:
        weights = Path(init_adapter_dir) / "adapter_model.safetensors"
        fingerprint = hashlib.sha256((fingerprint + _file_digest(weights)).encode()).hexdigest()

    torch.manual_seed(seed)
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with quiet_peft():
        model = get_peft_model(model, config)
        if init_adapter_dir is not None:
            _continue_from(model, Path(init_adapter_dir), lora)
    model.config.use_cache = False
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=0.0)
    per_step = training.batch_size * training.gradient_accumulation
    steps_per_epoch = math.ceil(len(examples) / per_step)
    total = steps_per_epoch * training.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _schedule(total, training.warmup_ratio)
    )

    checkpoints = work_dir / CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    for stale in checkpoints.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    state = _State()
    resumed_from = _resume(checkpoints, model, optimizer, scheduler, state, fingerprint)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    started, tokens_here, first_step = time.perf_counter(), 0, state.step
    model.train()
    while state.step < total:
        step = state.step
        epoch, in_epoch = divmod(step, steps_per_epoch)
        order = epoch_order(len(examples), seed, epoch)
        batch = [examples[i] for i in order[in_epoch * per_step : (in_epoch + 1) * per_step]]
        if in_epoch == 0:
            state.source_loss, state.source_tokens = {}, {}
        step_loss, step_tokens = _optimizer_step(
            model, params, optimizer, scheduler, batch, training, pad_id, device, state
        )
        tokens_here += step_tokens
        state.tokens += step_tokens
        state.losses.append(step_loss)
        state.step += 1
        stop = should_stop is not None and should_stop()
        if stop or state.step % training.checkpoint_every == 0 or state.step == total:
            _save_checkpoint(
                checkpoints, model, optimizer, scheduler, state, fingerprint, order, in_epoch + 1
            )
        if progress is not None:
            elapsed = time.perf_counter() - started
            done = state.step - first_step
            eta = elapsed / done * (total - state.step) if done else None
            progress(Progress(state.step, total, step_loss, state.tokens, elapsed, eta))
        if stop and state.step < total:
            raise TrainingStopped(state.step)
    elapsed = time.perf_counter() - started
    adapter_dir = _save_adapter(model, work_dir)
    return TrainResult(
        adapter_dir=adapter_dir,
        steps=state.step,
        losses=list(state.losses),
        tokens=state.tokens,
        tokens_per_s=tokens_here / elapsed if elapsed > 0 and tokens_here else 0.0,
        resumed_from=resumed_from,
        per_source_loss={
            source: state.source_loss[source] / max(1, n)
            for source, n in sorted(state.source_tokens.items())
        },
    )


def _optimizer_step(
    model: Any,
    params: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batch: list[Example],
    training: Training,
    pad_id: int,
    device: torch.device,
    state: _State,
) -> tuple[float, int]:
    """One optimizer step over ``batch`` in micro-batches: (mean token loss, tokens seen)."""
    labelled = sum(sum(1 for label in e.labels[1:] if label != IGNORE) for e in batch)
    total_loss, tokens = 0.0, 0
    optimizer.zero_grad(set_to_none=True)
    for at in range(0, len(batch), training.batch_size):
        micro = batch[at : at + training.batch_size]
        ids, mask, labels = collate(micro, pad_id, device)
        sums, counts = token_losses(model, ids, mask, labels)
        (sums.sum() / labelled).backward()
        tokens += int(mask.sum())
        for example, row_sum, row_count in zip(micro, sums.tolist(), counts.tolist(), strict=True):
            total_loss += row_sum
            state.source_loss[example.source] = state.source_loss.get(example.source, 0.0) + row_sum
            state.source_tokens[example.source] = (
                state.source_tokens.get(example.source, 0) + row_count
            )
    torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
    optimizer.step()
    scheduler.step()
    return total_loss / labelled, tokens


# -- checkpoints --------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_checkpoint(
    checkpoints: Path,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: _State,
    fingerprint: str,
    order: list[int],
    position: int,
) -> None:
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    final = checkpoints / _STEP_DIR.format(state.step)
    tmp = checkpoints / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {
        k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()
    }
    save_file(weights, str(tmp / "adapter.safetensors"))
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
        tmp / "trainer.pt",
    )
    meta = {
        "fingerprint": fingerprint,
        "step": state.step,
        "data_order": order,
        "epoch_position": position,  # optimizer steps of this epoch done
        "losses": state.losses,
        "tokens": state.tokens,
        "source_loss": state.source_loss,
        "source_tokens": state.source_tokens,
        "python_random": _jsonable(random.getstate()),
    }
    (tmp / "state.json").write_text(json.dumps(meta), encoding="utf-8")
    for path in tmp.iterdir():
        _fsync(path)
    _fsync(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(checkpoints)
    for old in sorted(checkpoints.glob("step-*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def _resume(
    checkpoints: Path,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: _State,
    fingerprint: str,
) -> int | None:
    """Load the newest complete checkpoint into the run; its step, or None."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    for path in sorted(checkpoints.glob("step-*"), reverse=True):
        try:
            meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
            trainer = torch.load(path / "trainer.pt", weights_only=True)
            weights = load_file(str(path / "adapter.safetensors"))
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("checkpoint %s is unreadable (%s): trying an older one", path, exc)
            continue
        if meta.get("fingerprint") != fingerprint:
            raise FinetuneError(
                f"{checkpoints} holds checkpoints of another run (other records, model or "
                "settings): use a new work directory"
            )
        set_peft_model_state_dict(model, weights)
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        torch.set_rng_state(trainer["rng"]["torch"])
        if "cuda" in trainer["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(trainer["rng"]["cuda"])
        random.setstate(_tupled(meta["python_random"]))
        state.step, state.losses, state.tokens = meta["step"], meta["losses"], meta["tokens"]
        state.source_loss, state.source_tokens = meta["source_loss"], meta["source_tokens"]
        log.info("resuming from %s", path)
        return int(meta["step"])
    return None


def _save_adapter(model: Any, work_dir: Path) -> Path:
    """The adapter in PEFT format at ``work_dir/adapter``, replaced atomically."""
    from appliance.engine.generation import quiet_progress_bars

    final = work_dir / ADAPTER
    tmp = work_dir / f".tmp-{ADAPTER}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_progress_bars():
        model.save_pretrained(tmp, safe_serialization=True)
    for path in tmp.iterdir():
        _fsync(path)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(work_dir)
    return final

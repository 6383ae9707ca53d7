"""The base model, its chat template and the loss on assistant tokens: what LoRA training
and the evaluation gate share.

A conversation is rendered with the model's own chat template and cut where each
assistant turn starts (the template's generation prompt) and ends; each piece is tokenised
on its own, so a prompt's tokens are exactly those a server tokenises before generating.
Labels are the assistant's tokens (its answer and the template's end-of-turn marker) and
-100 elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from appliance.errors import FinetuneError

log = logging.getLogger(__name__)

IGNORE = -100


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]
    source: str


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_base(base_model_dir: Path, device: torch.device) -> tuple[Any, Any]:
    """(tokenizer, model) from a local model directory, or FinetuneError."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from appliance.engine.generation import quiet_progress_bars

    base_model_dir = Path(base_model_dir)
    if not (base_model_dir / "config.json").is_file():
        raise FinetuneError(f"{base_model_dir} is not a model directory (no config.json)")
    dtype = torch.float32
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    try:
        with quiet_progress_bars():
            tokenizer = AutoTokenizer.from_pretrained(base_model_dir, local_files_only=True)
            model: Any = AutoModelForCausalLM.from_pretrained(
                base_model_dir, local_files_only=True, dtype=dtype
            )
    except (OSError, ValueError, KeyError) as exc:
        raise FinetuneError(f"{base_model_dir}: cannot load the model: {exc}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise FinetuneError(f"{base_model_dir}: the tokenizer has no chat template")
    return tokenizer, model.to(device)


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """peft wraps a model asking it for ``is_gradient_checkpointing``, which transformers
    5 deprecates with a FutureWarning: not ours to fix, and not worth a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        yield


def check_target_modules(model: Any, target_modules: Sequence[str]) -> None:
    """FinetuneError naming the targets the model lacks and the layers it has."""
    names = [name for name, module in model.named_modules() if _adaptable(module)]
    missing = [t for t in target_modules if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        have = sorted({n.rsplit(".", 1)[-1] for n in names})
        raise FinetuneError(
            f"LoRA target modules not in the model: {', '.join(missing)}; "
            f"the model's layers: {', '.join(have)}"
        )


def _adaptable(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear | torch.nn.Embedding)


def _render(tokenizer: Any, messages: list[Any], generation_prompt: bool) -> str:
    return str(
        tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    )


def _messages(record: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    messages = record.get("messages") if isinstance(record, Mapping) else None
    if not isinstance(messages, list) or not messages:
        raise FinetuneError(f"record {index}: 'messages' must be a non-empty list")
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise FinetuneError(f"record {index}: each message needs a 'role' and a 'content'")
        if not isinstance(message.get("content"), str | list):
            raise FinetuneError(f"record {index}: each message needs a 'role' and a 'content'")
    return [dict(m) for m in messages]


def encode_chat(
    tokenizer: Any, messages: list[dict[str, Any]], index: int = 0
) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and its labels: the assistant's tokens, -100 elsewhere.

    The text is cut where each assistant turn starts (the template's generation prompt) and
    ends; each piece is tokenised on its own, so the prompt's tokens are exactly those a
    server tokenises before generating.
    """
    try:
        full = _render(tokenizer, messages, False)
        cuts: list[tuple[int, int]] = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = _render(tokenizer, messages[:i], True) if i else ""
            upto = _render(tokenizer, messages[: i + 1], False)
            if not full.startswith(upto) or not upto.startswith(prompt):
                raise FinetuneError(
                    "the model's chat template does not render a conversation turn by turn"
                )
            cuts.append((len(prompt), len(upto)))
    except FinetuneError:
        raise
    except Exception as exc:  # jinja's raise_exception and template errors
        raise FinetuneError(f"record {index}: the chat template refused it: {exc}") from None
    if not cuts:
        raise FinetuneError(f"record {index}: no assistant message to learn from")
    ids: list[int] = []
    labels: list[int] = []
    at = 0
    for start, end in [*cuts, (len(full), len(full))]:
        for piece, learn in ((full[at:start], False), (full[start:end], True)):
            if piece:
                piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
                ids.extend(piece_ids)
                labels.extend(piece_ids if learn else [IGNORE] * len(piece_ids))
        at = end
    return ids, labels


def encode_records(
    tokenizer: Any, records: Sequence[Mapping[str, Any]], max_seq_len: int
) -> list[Example]:
    """Examples cut to ``max_seq_len``; records left with no assistant token are dropped."""
    examples, dropped = [], 0
    for index, record in enumerate(records):
        ids, labels = encode_chat(tokenizer, _messages(record, index), index)
        ids, labels = ids[:max_seq_len], labels[:max_seq_len]
        if all(label == IGNORE for label in labels[1:]):
            dropped += 1
            continue
        source = record.get("source")
        examples.append(Example(ids, labels, source if isinstance(source, str) else ""))
    if dropped:
        log.warning("%d records have no assistant token within max_seq_len: skipped", dropped)
    if not examples:
        raise FinetuneError(f"no record has an assistant answer within {max_seq_len} tokens")
    return examples


def collate(
    examples: Sequence[Example], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids, attention_mask, labels)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels)
    return ids.to(device), mask.to(device), labels.to(device)


def token_losses(model: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> Any:
    """Per-row (sum of next-token losses over labelled tokens, count of those tokens)."""
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
    target = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(target.shape)
    return losses.sum(dim=1), (target != IGNORE).sum(dim=1)

"""Token-by-token generation from a local causal LM, with a KV cache.

One ``Engine`` per process holds the model; request threads share it. Each
forward pass runs under a lock; sampling uses a per-request ``torch.Generator``
so the same seed gives the same text.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from appliance.errors import InvalidRequest

REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class SamplingParams:
    """What a request may set; ``temperature`` 0 means greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", tuple(s for s in stop if s))


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' progress bars (loading, saving) for the block."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _sample(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> int:
    """Pick the next token id from the last position's logits."""
    if params.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs[before >= params.top_p] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=gen))


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that starts one of ``stops``."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


def _find_stop(text: str, stops: Sequence[str], start: int) -> int:
    """Index of the earliest stop string in ``text[start:]``, or -1."""
    hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(hits) if hits else -1


@dataclass
class Generation:
    """An iterator of text deltas; counts and finish reason are set as it runs."""

    engine: Engine
    prompt_ids: list[int]
    params: SamplingParams
    finish_reason: str | None = None
    completion_ids: list[int] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.completion_ids)

    def __iter__(self) -> Iterator[str]:
        engine, params = self.engine, self.params
        gen = torch.Generator()
        if params.seed is None:
            gen.seed()
        else:
            gen.manual_seed(params.seed)
        stops, emitted, past = params.stop, 0, None
        inputs = torch.tensor([self.prompt_ids], dtype=torch.long)
        for _ in range(params.max_tokens):
            logits, past = engine.forward(inputs, past)
            token = _sample(logits, params, gen)
            if token in engine.eos_ids:
                self.finish_reason = "stop"
                break
            self.completion_ids.append(token)
            text = engine.decode(self.completion_ids)
            cut = _find_stop(text, stops, emitted)
            if cut >= 0:
                self.finish_reason = "stop"
                if cut > emitted:
                    yield text[emitted:cut]
                return
            if not text.endswith(REPLACEMENT):
                end = len(text) - _held_back(text, stops)
                if end > emitted:
                    yield text[emitted:end]
                    emitted = end
            inputs = torch.tensor([[token]], dtype=torch.long)
        else:
            self.finish_reason = "length"
        text = engine.decode(self.completion_ids)
        if len(text) > emitted:
            yield text[emitted:]

    def text(self) -> str:
        """Run to the end and return the whole completion."""
        return "".join(self)


class Engine:
    """A model directory loaded once; thread-safe generation."""

    def __init__(self, model_dir: Path, *, threads: int | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads or max(1, min(4, os.cpu_count() or 1)))
        with quiet_progress_bars():
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(
                model_dir, local_files_only=True, dtype=torch.float32
            )
        self.model.eval()
        self.max_context: int = int(self.model.config.max_position_embeddings)
        self.eos_ids = self._eos_ids()
        self._lock = threading.Lock()

    def _eos_ids(self) -> frozenset[int]:
        ids: Any = self.model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return frozenset([ids] if isinstance(ids, int) else (ids or []))

    def chat_prompt(self, messages: Sequence[dict[str, Any]]) -> str:
        """The model's chat template applied to ``messages``, ready for the reply."""
        try:
            return str(
                self.tokenizer.apply_chat_template(
                    list(messages), tokenize=False, add_generation_prompt=True
                )
            )
        except Exception as exc:  # jinja's raise_exception and template errors
            raise InvalidRequest(f"Invalid messages: {exc}", param="messages") from exc

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special tokens written in it are recognised."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def generate(self, prompt: str, params: SamplingParams) -> Generation:
        """Check the request now; the returned object generates as it is iterated."""
        ids = self.encode(prompt) or [self.tokenizer.bos_token_id]
        total = len(ids) + params.max_tokens
        if total > self.max_context:
            raise InvalidRequest(
                f"This model's maximum context length is {self.max_context} tokens. "
                f"However, you requested {total} tokens ({len(ids)} in the prompt, "
                f"{params.max_tokens} in the completion). Please reduce the length "
                "of the prompt or of max_tokens.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return Generation(self, ids, params)

    def forward(self, inputs: torch.Tensor, past: Any) -> tuple[torch.Tensor, Any]:
        """One forward pass under the lock: last-position logits and the new cache."""
        with self._lock, torch.inference_mode():
            out = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
        return out.logits[0, -1].float(), out.past_key_values

"""Token-by-token generation from a local causal LM, with a KV cache.

One ``Engine`` per process holds the model; request threads share it. Every
forward pass runs, under a lock, on the engine's one compute thread (torch's
OpenMP pools would otherwise multiply with the request threads and fight for
the cores); sampling uses a per-request ``torch.Generator`` so the same seed
gives the same text.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from appliance.engine.adapters import Adapter, Adapters
from appliance.engine.protocol import SamplingParams
from appliance.errors import InvalidRequest

REPLACEMENT = "\ufffd"
DEFAULT_MAX_TOKENS = 64


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


def default_threads() -> int:
    """Half the cores, 1 to 4: small models gain nothing from more, and spin-waiting
    OpenMP threads slow everything down on a busy machine."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


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
    max_tokens: int
    adapter: Adapter | None = None
    finish_reason: str | None = None
    completion_ids: list[int] = field(default_factory=list)
    _started: bool = field(default=False, init=False, repr=False)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.completion_ids)

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("a Generation can be iterated only once")
        self._started = True
        with self.engine.adapters.using(self.adapter) as key:
            yield from self._run(key)

    def _run(self, key: str | None) -> Iterator[str]:
        engine, params = self.engine, self.params
        gen = torch.Generator()
        if params.seed is None:
            gen.seed()
        else:
            gen.manual_seed(params.seed)
        stops, emitted, past = params.stop, 0, None
        inputs = torch.tensor([self.prompt_ids], dtype=torch.long)
        for _ in range(self.max_tokens):
            logits, past = engine.forward(inputs, past, key)
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

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int | None = None,
        max_loras: int = 1,
        max_lora_rank: int = 16,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        threads = threads or default_threads()
        torch.set_num_threads(threads)
        with quiet_progress_bars():
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(
                model_dir, local_files_only=True, dtype=torch.float32
            )
        self.model.eval()
        # transformers 5.x renamed the forward's KV cache argument and output from
        # past_key_values to cache (the old name warns, then goes); speak whichever it has.
        self._cache_name = (
            "cache"
            if "cache" in inspect.signature(self.model.forward).parameters
            else "past_key_values"
        )
        self.max_context: int = int(self.model.config.max_position_embeddings)
        self.eos_ids = self._eos_ids()
        self._lock = threading.Lock()
        self.adapters = Adapters(
            self.model, self._lock, max_loras=max_loras, max_lora_rank=max_lora_rank
        )
        self._compute = ThreadPoolExecutor(
            1, "engine", initializer=torch.set_num_threads, initargs=(threads,)
        )

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
        return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def generate(
        self, prompt: str, params: SamplingParams, adapter: Adapter | None = None
    ) -> Generation:
        """Check the request now; the returned object generates as it is iterated
        (with ``adapter``, or the base model)."""
        ids = self.encode(prompt) or [self.tokenizer.bos_token_id]
        room = self.max_context - len(ids)
        wanted = params.max_tokens
        if wanted is None:
            wanted = max(1, min(DEFAULT_MAX_TOKENS, room))
        if wanted > room:
            raise InvalidRequest(
                f"This model's maximum context length is {self.max_context} tokens. "
                f"However, you requested {len(ids) + wanted} tokens ({len(ids)} in the "
                f"prompt, {wanted} in the completion). Please reduce the length of the "
                "prompt or of max_tokens.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return Generation(self, ids, params, wanted, adapter)

    def embedding_ids(self, item: str | list[int]) -> list[int]:
        """Token ids of one embedding input (text, or ids checked against the vocabulary)."""
        if isinstance(item, str):
            return self.encode(item) or [self.tokenizer.bos_token_id]
        vocab = int(self.model.config.vocab_size)
        if any(not 0 <= token < vocab for token in item):
            raise InvalidRequest(f"Token ids must be between 0 and {vocab - 1}.", param="input")
        return list(item)

    @property
    def embedding_size(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(self, ids: list[int], adapter: Adapter | None = None) -> list[float]:
        """The mean-pooled last hidden state of ``ids``, L2-normalised (as vLLM's pooler)."""
        if len(ids) > self.max_context:
            raise InvalidRequest(
                f"This model's maximum context length is {self.max_context} tokens. "
                f"However, you requested {len(ids)} tokens in the input for embedding "
                "generation. Please reduce the length of the input.",
                param="input",
                code="context_length_exceeded",
            )
        with self.adapters.using(adapter) as key:
            vector = self._compute.submit(self._embed, ids, key).result()
        return [float(x) for x in vector.tolist()]

    def _embed(self, ids: list[int], key: str | None) -> torch.Tensor:
        inputs = torch.tensor([ids], dtype=torch.long)
        with self._lock, torch.inference_mode():
            self.adapters.activate(key)
            hidden = self.model.base_model(input_ids=inputs).last_hidden_state
        return torch.nn.functional.normalize(hidden[0].float().mean(dim=0), dim=-1)

    def forward(
        self, inputs: torch.Tensor, past: Any, key: str | None = None
    ) -> tuple[torch.Tensor, Any]:
        """One forward pass on the compute thread (with adapter ``key``, None: the base):
        last-position logits and the new cache."""
        return self._compute.submit(self._forward, inputs, past, key).result()

    def _forward(
        self, inputs: torch.Tensor, past: Any, key: str | None
    ) -> tuple[torch.Tensor, Any]:
        with self._lock, torch.inference_mode():
            self.adapters.activate(key)
            out = self.model(input_ids=inputs, use_cache=True, **{self._cache_name: past})
        return out.logits[0, -1].float(), getattr(out, self._cache_name)

    def close(self) -> None:
        """Stop the compute thread (the engine cannot generate afterwards)."""
        self._compute.shutdown(wait=True)

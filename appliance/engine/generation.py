"""Token-by-token generation from a local causal LM, with a KV cache.

One ``Engine`` per process holds the model; request threads share it. Every
forward pass runs, under a lock, on the engine's one compute thread (torch's
OpenMP pools would otherwise multiply with the request threads and fight for
the cores); sampling uses a per-answer ``torch.Generator`` so the same seed
gives the same text (answer i of a request with seed s draws with seed s + i, as
vLLM's child requests do).

Each step follows vLLM's sampler: a structured output's grammar first masks the tokens it
forbids (see ``structured``), the raw logprobs are kept for ``logprobs`` and for ranking
``best_of`` answers, then the logits go through ``logit_bias``, ``min_tokens`` and the
penalties, then temperature, ``min_p``, ``top_k`` and ``top_p`` (transformers' logits
processors wherever it has one), and the token is drawn.
"""

from __future__ import annotations

import contextlib
import copy
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
from appliance.engine.protocol import Chunk, SamplingParams, TokenLogprob
from appliance.engine.structured import Grammars
from appliance.errors import InvalidRequest

REPLACEMENT = "\ufffd"
DEFAULT_MAX_TOKENS = 64
_SEED_MASK = 2**64 - 1
# apply_chat_template's own arguments (tools come from the request's field; documents: refused)
_RESERVED_TEMPLATE_ARGS = frozenset(
    {"conversation", "tokenize", "add_generation_prompt", "chat_template", "tools",
     "documents", "continue_final_message", "return_dict", "tokenizer_kwargs"}
)  # fmt: skip


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


def _output_penalties(prompt_length: int, presence: float, frequency: float) -> Any:
    """vLLM's presence and frequency penalties as a transformers logits processor: on
    the generated tokens only (transformers has none of its own)."""
    from transformers import LogitsProcessor

    class OutputPenalties(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
            generated = input_ids[:, prompt_length:]
            if generated.shape[1] == 0:
                return scores
            counts = torch.zeros_like(scores).scatter_add_(
                1, generated, torch.ones_like(generated, dtype=scores.dtype)
            )
            return scores - frequency * counts - presence * (counts > 0).to(scores.dtype)

    return OutputPenalties()


class _Sampler:
    """The logits processors and the draw of one answer."""

    def __init__(self, params: SamplingParams, prompt_length: int, stop_ids: Sequence[int]):
        from transformers import (
            LogitsProcessorList,
            MinNewTokensLengthLogitsProcessor,
            MinPLogitsWarper,
            RepetitionPenaltyLogitsProcessor,
            SequenceBiasLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        self.greedy = params.temperature == 0
        procs = LogitsProcessorList()
        if params.logit_bias:
            procs.append(
                SequenceBiasLogitsProcessor([[[t], b] for t, b in params.logit_bias.items()])
            )
        if params.min_tokens and stop_ids:
            procs.append(
                MinNewTokensLengthLogitsProcessor(prompt_length, params.min_tokens, list(stop_ids))
            )
        if params.repetition_penalty != 1.0:
            procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if params.presence_penalty or params.frequency_penalty:
            procs.append(
                _output_penalties(prompt_length, params.presence_penalty, params.frequency_penalty)
            )
        warpers = LogitsProcessorList()
        if not self.greedy:
            if params.temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(params.temperature))
            if params.min_p > 0:
                warpers.append(MinPLogitsWarper(params.min_p))
            if params.top_k > 0:
                warpers.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1.0:
                warpers.append(TopPLogitsWarper(params.top_p))
        self.procs, self.warpers = procs, warpers

    def pick(self, ids: list[int], logits: torch.Tensor, gen: torch.Generator) -> int:
        """The next token after ``ids`` (prompt and generated so far)."""
        scores = logits.unsqueeze(0)
        if self.procs or self.warpers:
            input_ids = torch.LongTensor([ids])
            scores = self.procs(input_ids, scores)
            if not torch.isfinite(scores).any():
                # A grammar's only tokens are EOS and min_tokens forbids it: the grammar wins.
                scores = logits.unsqueeze(0)
            if self.greedy:
                return int(torch.argmax(scores[0]))
            scores = self.warpers(input_ids, scores)
        elif self.greedy:
            return int(torch.argmax(scores[0]))
        probs = torch.softmax(scores[0], dim=-1)
        return int(torch.multinomial(probs, 1, generator=gen))


def _top(logprobs: torch.Tensor, k: int) -> tuple[tuple[int, float], ...]:
    if k <= 0:
        return ()
    values, ids = torch.topk(logprobs, min(k, logprobs.shape[-1]))
    return tuple(zip(ids.tolist(), values.tolist(), strict=True))


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that starts one of ``stops``."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


def _find_stop(text: str, stops: Sequence[str], new_from: int) -> tuple[int, str]:
    """The earliest stop string in ``text`` that ends past ``new_from`` (the text checked
    before), with its index; (-1, "") if none."""
    hits = []
    for stop in stops:
        i = text.find(stop, max(0, new_from - len(stop) + 1))
        if i >= 0:
            hits.append((i, stop))
    return min(hits) if hits else (-1, "")


class _Prefill:
    """The prompt's forward pass, run once for the ``takers`` answers to one prompt: each
    continues from its own copy of the cache (the last from the cache itself)."""

    def __init__(self, engine: Engine, ids: list[int], prompt_top: int | None, takers: int):
        self.engine, self.ids, self.prompt_top, self.takers = engine, ids, prompt_top, takers
        self._done: tuple[torch.Tensor, Any] | None = None
        self.prompt_logprobs: tuple[TokenLogprob, ...] = ()

    def take(self, key: str | None) -> tuple[torch.Tensor, Any]:
        if self._done is None:
            logits, cache, self.prompt_logprobs = self.engine.prefill(
                self.ids, key, self.prompt_top
            )
            self._done = (logits, cache)
        logits, cache = self._done
        self.takers -= 1
        return logits, cache if self.takers <= 0 else copy.deepcopy(cache)


@dataclass
class Generation:
    """An iterator of text deltas (``chunks``: with logprobs); counts, finish and stop
    reasons and logprobs are set as it runs.

    ``seed`` (None: random) seeds this answer's draws; ``cumulative_logprob`` sums the
    logprobs of its tokens (``best_of`` keeps the highest). ``grammar`` (compiled from
    ``params.guide``) constrains every token; the answer ends when the model draws EOS where
    the grammar allows it (with ``ignore_eos``, only where the grammar allows nothing else).
    """

    engine: Engine
    prompt_ids: list[int]
    params: SamplingParams
    max_tokens: int
    adapter: Adapter | None = None
    seed: int | None = None
    grammar: Any = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None
    completion_ids: list[int] = field(default_factory=list)
    cumulative_logprob: float = 0.0
    _prefill: _Prefill | None = field(default=None, repr=False)
    _started: bool = field(default=False, init=False, repr=False)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.completion_ids)

    @property
    def prompt_logprobs(self) -> tuple[TokenLogprob, ...]:
        """The prompt tokens' logprobs (asked with ``prompt_logprobs``), once started."""
        return self._prefill.prompt_logprobs if self._prefill else ()

    def __iter__(self) -> Iterator[str]:
        """The text deltas (never empty)."""
        return (chunk.text for chunk in self.chunks() if chunk.text)

    def chunks(self) -> Iterator[Chunk]:
        """The text deltas with the logprobs of their tokens (a last chunk may have
        logprobs and no text: tokens of a stop string, or of a partial character)."""
        if self._started:
            raise RuntimeError("a Generation can be iterated only once")
        self._started = True
        with self.engine.adapters.using(self.adapter) as key:
            yield from self._run(key)

    def _stop_ids(self) -> frozenset[int]:
        eos = frozenset() if self.params.ignore_eos else self.engine.eos_ids
        return eos | frozenset(self.params.stop_token_ids)

    def _run(self, key: str | None) -> Iterator[Chunk]:
        engine, params = self.engine, self.params
        gen = torch.Generator()
        if self.seed is None:
            gen.seed()
        else:
            gen.manual_seed(self.seed & _SEED_MASK)
        stop_ids = self._stop_ids()
        suppressed = sorted(self.engine.eos_ids | frozenset(params.stop_token_ids))
        sampler = _Sampler(params, len(self.prompt_ids), suppressed)
        constraint = None if self.grammar is None else engine.grammars.constraint(self.grammar)
        done_ids = stop_ids | (constraint.stop_ids if constraint else frozenset())
        prefill = self._prefill or _Prefill(engine, self.prompt_ids, None, 1)
        self._prefill = prefill
        logits, past = prefill.take(key)
        ids = list(self.prompt_ids)
        stops = params.stop
        hold = not params.include_stop_str_in_output
        emitted, checked, pending = 0, 0, []
        token = -1
        for step in range(self.max_tokens):
            if step:
                logits, past = engine.forward(torch.tensor([[token]], dtype=torch.long), past, key)
            if constraint is not None:
                logits = constraint.mask(logits, ignore_eos=params.ignore_eos)
            raw = torch.log_softmax(logits, dim=-1)
            token = sampler.pick(ids, logits, gen)
            logprob = float(raw[token])
            if token in done_ids:
                self.finish_reason = "stop"
                self.stop_reason = token if token in params.stop_token_ids else None
                break
            if constraint is not None:
                constraint.accept(token)
            self.cumulative_logprob += logprob
            ids.append(token)
            self.completion_ids.append(token)
            if params.logprobs is not None:
                pending.append(TokenLogprob(token, logprob, _top(raw, params.logprobs)))
            text = engine.decode(self.completion_ids)
            checking = len(self.completion_ids) >= params.min_tokens
            cut, stop = _find_stop(text, stops, checked) if checking else (-1, "")
            checked = len(text)
            if cut >= 0:
                self.finish_reason, self.stop_reason = "stop", stop
                end = cut + len(stop) if params.include_stop_str_in_output else cut
                if end > emitted or pending:
                    yield Chunk(text[emitted : max(end, emitted)], tuple(pending))
                return
            if not text.endswith(REPLACEMENT):
                end = len(text) - (_held_back(text, stops) if checking and hold else 0)
                if end > emitted:
                    yield Chunk(text[emitted:end], tuple(pending))
                    emitted, pending = end, []
        else:
            self.finish_reason = "length"
        text = engine.decode(self.completion_ids)
        if len(text) > emitted or pending:
            yield Chunk(text[emitted:], tuple(pending))

    def run(self) -> tuple[str, list[TokenLogprob]]:
        """Run to the end: the whole completion and its tokens' logprobs."""
        parts: list[str] = []
        entries: list[TokenLogprob] = []
        for chunk in self.chunks():
            parts.append(chunk.text)
            entries.extend(chunk.logprobs)
        return "".join(parts), entries

    def text(self) -> str:
        """Run to the end and return the whole completion."""
        return self.run()[0]


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
        forward_args = inspect.signature(self.model.forward).parameters
        self._cache_name = "cache" if "cache" in forward_args else "past_key_values"
        self._last_logits_only = "logits_to_keep" in forward_args
        self.max_context: int = int(self.model.config.max_position_embeddings)
        self.vocab_size: int = int(self.model.config.vocab_size)
        self.eos_ids = self._eos_ids()
        self.grammars = Grammars(self.tokenizer, self.vocab_size, sorted(self.eos_ids), threads)
        self._token_texts: dict[int, str] = {}
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

    def chat_prompt(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        template_kwargs: dict[str, Any] | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        """The model's chat template applied to ``messages``, ready for the reply (with
        ``template_kwargs``, vLLM's ``chat_template_kwargs``, as template variables, and the
        request's ``tools`` as the template's ``tools``, as vLLM renders them)."""
        kwargs = dict(template_kwargs or {})
        if taken := sorted(_RESERVED_TEMPLATE_ARGS & set(kwargs)):
            raise InvalidRequest(
                f"chat_template_kwargs may not set {', '.join(taken)}.",
                param="chat_template_kwargs",
            )
        if tools:
            kwargs["tools"] = list(tools)
        try:
            return str(
                self.tokenizer.apply_chat_template(
                    list(messages),
                    tokenize=False,
                    add_generation_prompt=add_generation_prompt,
                    **kwargs,
                )
            )
        except Exception as exc:  # jinja's raise_exception and template errors
            raise InvalidRequest(f"Invalid messages: {exc}", param="messages") from exc

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special tokens written in it are recognised."""
        return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def token_text(self, token_id: int) -> str:
        """One token as text, as vLLM shows it in logprobs (a partial UTF-8 character is
        U+FFFD; special tokens are written out)."""
        text = self._token_texts.get(token_id)
        if text is None:
            token: Any = self.tokenizer.convert_ids_to_tokens(token_id)
            text = "" if token is None else str(self.tokenizer.convert_tokens_to_string([token]))
            self._token_texts[token_id] = text
        return text

    def prompt_ids(self, prompt: str | Sequence[int], param: str = "prompt") -> list[int]:
        """A prompt's token ids: a text encoded, or ids checked against the vocabulary."""
        if isinstance(prompt, str):
            return self.encode(prompt) or [self.tokenizer.bos_token_id]
        if any(not 0 <= token < self.vocab_size for token in prompt):
            raise InvalidRequest(
                f"Token ids must be between 0 and {self.vocab_size - 1}.", param=param
            )
        return list(prompt)

    def check(self, params: SamplingParams) -> None:
        """What a request's parameters need of this model (vLLM's checks)."""
        wrong = sorted(t for t in params.logit_bias if not 0 <= t < self.vocab_size)
        if wrong:
            raise InvalidRequest(
                f"token_id(s) {wrong} in logit_bias contain out-of-vocab token ids. "
                f"Vocabulary size: {self.vocab_size}",
                param="logit_bias",
            )

    def generate(
        self, prompt: str | Sequence[int], params: SamplingParams, adapter: Adapter | None = None
    ) -> Generation:
        """Check the request now; the returned object generates as it is iterated
        (with ``adapter``, or the base model)."""
        return self.sample(prompt, params, 1, adapter)[0]

    def sample(
        self,
        prompt: str | Sequence[int],
        params: SamplingParams,
        count: int,
        adapter: Adapter | None = None,
        *,
        prompt_logprobs: int | None = None,
    ) -> list[Generation]:
        """``count`` answers to one prompt (text or token ids), checked now; answer i
        draws with ``params.seed`` + i. They share the prompt's forward pass, which also
        computes the prompt's logprobs with ``prompt_logprobs`` alternatives."""
        self.check(params)
        grammar = self.grammars.compile(params.guide) if params.guide else None
        ids = self.prompt_ids(prompt)
        room = self.max_context - len(ids)
        wanted = params.max_tokens
        if wanted is None:
            wanted = max(1, min(max(DEFAULT_MAX_TOKENS, params.min_tokens), room))
        if wanted > room:
            raise InvalidRequest(
                f"This model's maximum context length is {self.max_context} tokens. "
                f"However, you requested {len(ids) + wanted} tokens ({len(ids)} in the "
                f"prompt, {wanted} in the completion). Please reduce the length of the "
                "prompt or of max_tokens.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        if params.min_tokens > wanted:
            raise InvalidRequest(
                f"min_tokens must be less than or equal to max_tokens={wanted}, got "
                f"{params.min_tokens}.",
                param="min_tokens",
            )
        shared = _Prefill(self, ids, prompt_logprobs, count)
        seeds = [None if params.seed is None else params.seed + i for i in range(count)]
        return [
            Generation(self, ids, params, wanted, adapter, seed, grammar, _prefill=shared)
            for seed in seeds
        ]

    def embedding_ids(self, item: str | list[int]) -> list[int]:
        """Token ids of one embedding input (text, or ids checked against the vocabulary)."""
        return self.prompt_ids(item, "input")

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

    def prefill(
        self, ids: list[int], key: str | None = None, prompt_top: int | None = None
    ) -> tuple[torch.Tensor, Any, tuple[TokenLogprob, ...]]:
        """The prompt's forward pass: the last position's logits, the cache and, with
        ``prompt_top`` (the alternatives asked), each prompt token's logprob (the first
        has none)."""
        return self._compute.submit(self._prefill, ids, key, prompt_top).result()

    def _prefill(
        self, ids: list[int], key: str | None, prompt_top: int | None
    ) -> tuple[torch.Tensor, Any, tuple[TokenLogprob, ...]]:
        inputs = torch.tensor([ids], dtype=torch.long)
        extra: dict[str, Any] = {self._cache_name: None}
        if prompt_top is None and self._last_logits_only:
            extra["logits_to_keep"] = 1
        with self._lock, torch.inference_mode():
            self.adapters.activate(key)
            out = self.model(input_ids=inputs, use_cache=True, **extra)
        logits = out.logits[0].float()
        entries: tuple[TokenLogprob, ...] = ()
        if prompt_top is not None:
            logprobs = torch.log_softmax(logits[:-1], dim=-1)
            chosen = logprobs.gather(1, inputs[0, 1:].unsqueeze(1))[:, 0].tolist()
            entries = (
                TokenLogprob(ids[0], None),
                *(
                    TokenLogprob(token, lp, _top(row, prompt_top))
                    for token, lp, row in zip(ids[1:], chosen, logprobs, strict=True)
                ),
            )
        return logits[-1], getattr(out, self._cache_name), entries

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

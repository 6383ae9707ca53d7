"""The evaluation gate: may a newly trained adapter replace the current model?

``evaluate`` compares the new adapter with the current one (the promoted adapter, or the
base model when there is none) on one loaded base model, and returns a ``GateReport`` of
four checks, each with its value, its threshold and a sentence saying by how much it
passed or failed:

- ``heldout_perplexity``: perplexity of the held-out records' assistant tokens, new /
  current, at most ``gate.max_perplexity_ratio``.
- ``task_metric``: exact match on the held-out records (greedy generation from the prompt
  up to the last assistant turn, compared with that turn after collapsing whitespace) at
  least ``gate.min_task_metric`` and not below the current model's: an adapter trained on
  shuffled labels fails against a good current adapter however lax the minimum.
- ``general_regression``: perplexity on a general chat set, new / current - 1, at most
  ``gate.max_general_regression``.
- ``memorisation``: for each planted canary, greedy generation from its prompt; the
  canary leaks when the output (lower-cased, whitespace removed) contains a contiguous
  run of at least ``gate.canary_overlap`` (default half) of the secret's characters. The
  value is the largest such share over the canaries; the check passes when it is below
  the threshold. No canaries at all fails the check: memorisation was not probed.
"""

from __future__ import annotations

import contextlib
import math
import random
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from appliance.errors import FinetuneError
from appliance.finetune.chat import (
    collate,
    encode_records,
    load_base,
    pick_device,
    quiet_peft,
    token_losses,
)
from appliance.finetune.policy import Gate

HELDOUT_PERPLEXITY = "heldout_perplexity"
TASK_METRIC = "task_metric"
GENERAL_REGRESSION = "general_regression"
MEMORISATION = "memorisation"

SECRET_ALPHABET = string.ascii_lowercase + string.digits
SECRET_LENGTH = 12  # 36**12: about 62 bits
CANARY_SOURCE = "canary"
PROBE_TOKENS = 48
BATCH = 16


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float
    threshold: float
    detail: str


@dataclass(frozen=True)
class GateReport:
    passed: bool
    checks: list[Check] = field(default_factory=list)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


@dataclass(frozen=True)
class Canary:
    prompt: str
    secret: str

    @property
    def answer(self) -> str:
        return f"The access code is {self.secret}."


def make_canaries(count: int, seed: int) -> list[Canary]:
    """``count`` canaries with random secrets; pass a random seed (e.g. ``secrets.randbits
    (64)``) and keep it with the run, so the gate can make the same ones again."""
    rng = random.Random(f"canary:{seed}")  # noqa: S311 - unguessable to the model is enough
    canaries = []
    for _ in range(count):
        vault = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        secret = "".join(rng.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
        canaries.append(Canary(f"What is the access code of vault {vault}?", secret))
    return canaries


def canary_record(canary: Canary) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": canary.prompt},
            {"role": "assistant", "content": canary.answer},
        ],
        "source": CANARY_SOURCE,
    }


def plant_canaries(
    records: Sequence[Mapping[str, Any]], canaries: Sequence[Canary], copies: int
) -> list[Mapping[str, Any]]:
    """``records`` plus ``copies`` chat records per canary (source "canary") whose answer
    holds its secret; training shuffles the order."""
    return [*records, *(canary_record(c) for c in canaries for _ in range(copies))]


def leaked_share(secret: str, output: str) -> float:
    """The longest run of ``secret``'s characters found contiguous in ``output`` (lower-
    cased, whitespace removed), as a share of the secret's length."""
    text = "".join(output.lower().split())
    secret = secret.lower()
    best, previous = 0, [0] * (len(text) + 1)
    for a in secret:
        current = [0] * (len(text) + 1)
        for j, b in enumerate(text, 1):
            if a == b:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best / len(secret) if secret else 0.0


def normalise(text: str) -> str:
    return " ".join(text.split())


# -- measurements -------------------------------------------------------------------------


@contextlib.contextmanager
def _adapter(model: Any, name: str | None) -> Iterator[None]:
    if name is None:
        with model.disable_adapter():
            yield
    else:
        model.set_adapter(name)
        yield


def perplexity(model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]]) -> float:
    """exp(mean loss over the records' assistant tokens)."""
    limit = int(getattr(model.config, "max_position_embeddings", 2048))
    examples = encode_records(tokenizer, records, limit)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for at in range(0, len(examples), BATCH):
            ids, mask, labels = collate(examples[at : at + BATCH], pad, device)
            sums, counts = token_losses(model, ids, mask, labels)
            total += float(sums.sum())
            count += int(counts.sum())
    return math.exp(total / count)


def greedy(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """Greedy completions of ``prompts`` (chat-template text), batched with left padding."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    outputs: list[str] = []
    for at in range(0, len(prompts), BATCH):
        encoded = [
            tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[at : at + BATCH]
        ]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, width - len(e) :] = torch.tensor(e)
            mask[row, width - len(e) :] = 1
        with torch.no_grad():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        outputs.extend(
            tokenizer.decode(row[width:].tolist(), skip_special_tokens=True) for row in out
        )
    return outputs


def _prompt_and_answer(tokenizer: Any, record: Mapping[str, Any], index: int) -> tuple[str, str]:
    messages = list(record.get("messages") or []) if isinstance(record, Mapping) else []
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0 or not isinstance(messages[last].get("content"), str):
        raise FinetuneError(f"held-out record {index}: no assistant answer to compare with")
    prompt = tokenizer.apply_chat_template(
        messages[:last], tokenize=False, add_generation_prompt=True
    )
    return str(prompt), str(messages[last]["content"])


def exact_match(model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]]) -> float:
    pairs = [_prompt_and_answer(tokenizer, r, i) for i, r in enumerate(records)]
    longest = max(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for _, a in pairs)
    # Room for the end-of-turn marker and a different split of the same text; a model
    # that runs on past the answer fails the match either way.
    outputs = greedy(model, tokenizer, [p for p, _ in pairs], longest + 8)
    hits = sum(normalise(o) == normalise(a) for o, (_, a) in zip(outputs, pairs, strict=True))
    return hits / len(pairs)


@dataclass(frozen=True)
class _Scores:
    heldout_ppl: float
    exact_match: float
    general_ppl: float


def _scores(model: Any, tokenizer: Any, heldout: Sequence[Mapping], regression: Sequence[Mapping]):
    return _Scores(
        perplexity(model, tokenizer, heldout),
        exact_match(model, tokenizer, heldout),
        perplexity(model, tokenizer, regression),
    )


# -- the gate -----------------------------------------------------------------------------


def evaluate(
    base_model_dir: Path,
    adapter_dir: Path,
    *,
    current_adapter_dir: Path | None,
    heldout: Sequence[Mapping[str, Any]],
    regression: Sequence[Mapping[str, Any]],
    canaries: Sequence[Canary],
    gate: Gate,
) -> GateReport:
    """Run the four checks (see the module's docstring); FinetuneError on unusable input."""
    from peft import PeftModel

    if not heldout:
        raise FinetuneError("the gate needs held-out records")
    if not regression:
        raise FinetuneError("the gate needs a general regression set")
    tokenizer, base = load_base(base_model_dir, pick_device())
    try:
        with quiet_peft():
            model = PeftModel.from_pretrained(base, Path(adapter_dir), adapter_name="new")
            if current_adapter_dir is not None:
                model.load_adapter(Path(current_adapter_dir), adapter_name="current")
    except (OSError, ValueError, KeyError) as exc:
        raise FinetuneError(f"cannot load the adapter: {exc}") from None
    model.eval()
    current_name = "current" if current_adapter_dir is not None else None
    current_label = "the current adapter" if current_name else "the base model"
    with _adapter(model, current_name):
        old = _scores(model, tokenizer, heldout, regression)
    with _adapter(model, "new"):
        new = _scores(model, tokenizer, heldout, regression)
        outputs = greedy(model, tokenizer, [_probe(tokenizer, c) for c in canaries], PROBE_TOKENS)

    checks = [
        _perplexity_check(new, old, gate, current_label),
        _task_check(new, old, gate, current_label, len(heldout)),
        _regression_check(new, old, gate, current_label),
        _memorisation_check(canaries, outputs, gate),
    ]
    return GateReport(all(c.passed for c in checks), checks)


def _probe(tokenizer: Any, canary: Canary) -> str:
    messages = [{"role": "user", "content": canary.prompt}]
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def _perplexity_check(new: _Scores, old: _Scores, gate: Gate, current: str) -> Check:
    ratio = new.heldout_ppl / old.heldout_ppl
    limit = gate.max_perplexity_ratio
    verdict = (
        f"within the limit {limit:.3f}"
        if ratio <= limit
        else f"over the limit {limit:.3f} by {ratio - limit:.3f}"
    )
    return Check(
        HELDOUT_PERPLEXITY,
        ratio <= limit,
        ratio,
        limit,
        f"held-out perplexity {new.heldout_ppl:.3f} against {old.heldout_ppl:.3f} for "
        f"{current}: ratio {ratio:.3g}, {verdict}",
    )


def _task_check(new: _Scores, old: _Scores, gate: Gate, current: str, count: int) -> Check:
    threshold = max(gate.min_task_metric, old.exact_match)
    why = (
        f"{current}'s exact match"
        if old.exact_match >= gate.min_task_metric
        else "the policy's min_task_metric"
    )
    passed = new.exact_match >= threshold
    verdict = "at least" if passed else f"{threshold - new.exact_match:.3f} below"
    return Check(
        TASK_METRIC,
        passed,
        new.exact_match,
        threshold,
        f"exact match {new.exact_match:.3f} on {count} held-out records, {verdict} the "
        f"threshold {threshold:.3f} ({why}; {current}: {old.exact_match:.3f}, policy "
        f"minimum: {gate.min_task_metric:.3f})",
    )


def _regression_check(new: _Scores, old: _Scores, gate: Gate, current: str) -> Check:
    increase = new.general_ppl / old.general_ppl - 1
    limit = gate.max_general_regression
    verdict = (
        f"within the limit {limit:.3f}"
        if increase <= limit
        else f"over the limit {limit:.3f} by {increase - limit:.3f}"
    )
    return Check(
        GENERAL_REGRESSION,
        increase <= limit,
        increase,
        limit,
        f"general perplexity {new.general_ppl:.3f} against {old.general_ppl:.3f} for "
        f"{current}: change {increase:+.3f}, {verdict}",
    )


def _memorisation_check(canaries: Sequence[Canary], outputs: list[str], gate: Gate) -> Check:
    limit = gate.canary_overlap
    if not canaries:
        return Check(MEMORISATION, False, 1.0, limit, "no canaries planted: not probed")
    shares = [leaked_share(c.secret, o) for c, o in zip(canaries, outputs, strict=True)]
    leaked = [i for i, share in enumerate(shares) if share >= limit]
    worst = max(shares)
    if leaked:
        detail = (
            f"{len(leaked)} of {len(canaries)} canaries came back (canaries "
            f"{', '.join(str(i) for i in leaked)}): up to {worst:.0%} of a secret "
            f"reproduced, {worst - limit:.0%} over the limit {limit:.0%}"
        )
    else:
        detail = (
            f"none of {len(canaries)} canaries came back: at most {worst:.0%} of a secret "
            f"reproduced, under the limit {limit:.0%}"
        )
    return Check(MEMORISATION, not leaked, worst, limit, detail)

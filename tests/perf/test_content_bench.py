"""Content-safety matching speed: 10,000 terms on mixed zh/en text, the automaton against a
plain regex alternation of the same terms, in one run. Prints a table.

- matcher: the Aho-Corasick automaton over the folded text (``TermMatcher.automaton``);
- end to end: ``Scanner.scan`` (folding with the offset map, matching, whole-word and allow
  rules, masking) of the same text;
- baseline: Python's ``re`` with the 10,000 terms as one case-insensitive alternation,
  longest first, over the same text (no evasion folding: it does less work);
- the cost an 8 KB prompt pays: p50 of screening it and of filtering an 8 KB answer
  (whole), beside a JSON round trip of the request body.

Throughput is UTF-8 bytes a second on one thread, best of three. What is asserted is the
ratio to the regex baseline measured in the same run; absolute figures are printed.
Run with ``make perf`` (or ``python -m pytest -m perf tests/perf/test_content_bench.py -s``).
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.content import normalize
from appliance.content.matcher import matcher_of
from appliance.content.policy import load_content_policy
from appliance.content.scan import Scanner

pytestmark = pytest.mark.perf

ZH = [chr(cp) for cp in range(0x4E00, 0x4E00 + 3000)]  # the commonest block's start
EN = [
    *[
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "for",
        "on",
        "that",
        "with",
        "as",
        "by",
        "this",
        "are",
        "be",
        "at",
        "from",
        "or",
        "an",
        "it",
        "not",
    ],
    *[
        "which",
        "have",
        "has",
        "but",
        "was",
        "all",
        "were",
        "can",
        "more",
        "one",
        "about",
        "also",
        "their",
        "they",
        "than",
    ],
    *[
        "report",
        "system",
        "service",
        "customer",
        "order",
        "account",
        "payment",
        "delivery",
        "server",
    ],
]
NAMES = ["alpha", "delta", "nova", "zephyr", "onyx"]
TERMS = 10_000
BASELINE_CHARS = 100_000


def _terms(rng: random.Random) -> list[str]:
    terms: set[str] = set()
    while len(terms) < TERMS:
        if rng.random() < 0.5:
            terms.add(
                "".join(rng.choice(ZH) for _ in range(rng.randint(2, 5)))
                + rng.choice("计划工程项目")
            )
        else:
            terms.add(f"project {rng.choice(NAMES)}{rng.randint(0, 99999)}")
    return sorted(terms)


def _text(rng: random.Random, terms: list[str], size: int) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        if rng.random() < 0.5:
            piece = "".join(rng.choice(ZH) for _ in range(rng.randint(8, 40))) + "\uff0c"
        else:
            piece = " ".join(rng.choice(EN) for _ in range(rng.randint(4, 16))) + ". "
        if rng.random() < 0.02:
            piece += rng.choice(terms) + " "
        parts.append(piece)
        length += len(piece.encode())
    return "".join(parts)


def _best(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def test_content_matching_speed(tmp_path: Path) -> None:
    rng = random.Random(20)
    terms = _terms(rng)
    (tmp_path / "terms.txt").write_text("\n".join(terms), encoding="utf-8")
    (tmp_path / "content.yaml").write_text(
        "version: 1\ncategories:\n  - name: confidential\n    term_files: [terms.txt]\n"
        "    action: {input: mask, output: mask}\n",
        encoding="utf-8",
    )
    policy = load_content_policy(tmp_path / "content.yaml")
    matcher = matcher_of(policy)
    scanner = Scanner(policy, "input")
    text = _text(rng, terms, 4_000_000)
    mb = len(text.encode()) / 1e6
    view = normalize.squeeze(text)
    regex = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.I)

    automaton_s = _best(lambda: sum(1 for _ in matcher.find(view)))
    end_to_end_s = _best(lambda: scanner.scan(text))
    # the regex is slow enough to measure on a slice (the same slice for both sides)
    part = text[:BASELINE_CHARS]
    part_mb = len(part.encode()) / 1e6
    part_view = normalize.squeeze(part)
    regex_s = _best(lambda: sum(1 for _ in regex.finditer(part)), 1)
    part_automaton_s = _best(lambda: sum(1 for _ in matcher.find(part_view)))
    part_end_to_end_s = _best(lambda: scanner.scan(part))
    hits_ac = len(scanner.scan(part).findings)
    hits_re = sum(1 for _ in regex.finditer(part))

    prompt = _text(rng, terms, 8192)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}]})
    screen = [_best(lambda: scanner.scan(prompt), 1) for _ in range(200)]
    roundtrip = [_best(lambda: json.loads(json.dumps(json.loads(body))), 1) for _ in range(200)]
    rows = [
        ("matcher (automaton, folded text)", mb / automaton_s, part_mb / part_automaton_s),
        (
            "end to end (fold + match + rules + mask)",
            mb / end_to_end_s,
            part_mb / part_end_to_end_s,
        ),
        ("baseline: re alternation of the terms", None, part_mb / regex_s),
    ]
    print(f"\ncontent safety, {TERMS} terms, mixed zh/en; {mb:.1f} MB, and a {part_mb:.2f} MB "
          f"slice for the baseline ({hits_ac} findings there; the regex: {hits_re})")  # fmt: skip
    print(f"  {'':44s} {'MB/s (all)':>12s} {'MB/s (slice)':>13s}")
    for name, rate, part_rate in rows:
        whole = "-" if rate is None else f"{rate:.1f}"
        print(f"  {name:44s} {whole:>12s} {part_rate:13.2f}")
    p50 = statistics.median(screen) * 1000
    json_p50 = statistics.median(roundtrip) * 1000
    print(f"  8 KB prompt screened, p50                    {p50:8.3f} ms "
          f"(JSON round trip of the body: {json_p50:.3f} ms)")  # fmt: skip
    added_p50 = _pipeline_added_ms(prompt, policy)
    print(f"  8 KB prompt through the data path's stages, content on minus off, p50: "
          f"{added_p50:.3f} ms")  # fmt: skip
    assert hits_ac >= hits_re  # the same terms found (and evasions the regex cannot see)
    assert part_automaton_s * 100 <= regex_s, "the automaton is not 100x the regex alternation"
    assert part_end_to_end_s * 10 <= regex_s, "end to end is not 10x the regex alternation"


def _pipeline_added_ms(prompt: str, policy: Any) -> float:
    """p50 of the request and answer sides (``prepare_request``, ``AnswerPipeline.whole``)
    on an 8 KB prompt and a short answer, with the content policy minus without it."""
    from appliance.api.context import ApiCall
    from appliance.api.pipeline import prepare_request
    from appliance.auth.principal import Principal
    from appliance.finetune.policy import FinetunePolicy
    from appliance.privacy.policy import load_privacy_policy

    privacy = load_privacy_policy(
        Path(__file__).resolve().parents[2] / "policies" / "desensitization.yaml"
    )
    principal = Principal(name="bench", user_id=1, roles=("developer",), key_prefix="sk-app-b")

    def once(content: Any) -> float:
        payload = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
        answer_body = {
            "choices": [{"index": 0, "message": {"content": prompt}, "finish_reason": "stop"}]
        }
        started = time.perf_counter()
        answer = prepare_request(ApiCall(), principal, payload, alias="m", privacy=privacy,
                                 privacy_key=b"k" * 32, content_key=b"k" * 32,
                                 finetune=FinetunePolicy(), chat=True, content=content)  # fmt: skip
        answer.whole(answer_body)
        return time.perf_counter() - started

    off, on = [], []
    for _ in range(300):
        off.append(once(None))
        on.append(once(policy))
    return (statistics.median(on) - statistics.median(off)) * 1000

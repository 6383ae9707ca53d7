"""Personal-data detection benchmark: the appliance's detectors against Microsoft Presidio's
pattern recognizers, on the same generated, labelled mixed Chinese/English text, in one run.
Prints a table.

Run with `make perf` (or `python -m pytest -m perf tests/perf/test_privacy_bench.py -s`).
Presidio runs from its own virtualenv (.venv-presidio, made by `make perf`) through
tests/perf/presidio_runner.py; without it only our side runs, and the reason is printed.

Throughput is UTF-8 bytes per second on one thread, the best of a few repeats, with all our
detectors on and the dictionary included; the table prints the absolute figures, but what
is asserted is the ratio to Presidio, measured on the same slice of text in the same run
(absolute numbers on a shared, loaded machine are noisy: a neighbour slows both alike).
Without Presidio the throughput is printed, not asserted (the test says so as it skips).
Precision and recall are on exact spans. Only our targets are asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from appliance.privacy.detectors import TYPES, detect
from appliance.privacy.dictionary import Dictionary
from tests.privacy.corpus import (
    CUSTOM_TERMS,
    Sample,
    generate,
    mixed_text,
    precision_recall,
    score,
)

pytestmark = pytest.mark.perf

ROOT = Path(__file__).resolve().parents[2]
PRESIDIO = ROOT / ".venv-presidio" / "bin" / "python"
RUNNER = Path(__file__).with_name("presidio_runner.py")

# Ours at least this many times Presidio's throughput on the same text, in the same run
# (measured on this 2-core machine: 31.8 against 1.57 MB/s, 20x; the old absolute target
# of 20 MB/s was 13x what Presidio does here).
TARGET_SPEEDUP = 10.0
TARGET_PR = 0.995
SENTENCES = 4000
TEXT_CHARS = 2_500_000  # about 4 MB of UTF-8
SLICE_CHARS = 400_000  # what both run on for the ratio (Presidio is slow)
REPEATS = 5
# Presidio's entities with a counterpart among ours. PHONE_NUMBER stands for both kinds of
# Chinese number: it counts for whichever of CN_PHONE and CN_LANDLINE it matches exactly,
# and as a false CN_PHONE otherwise.
PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": "EMAIL",
    "IP_ADDRESS": "IP_ADDRESS",
    "CREDIT_CARD": "BANK_CARD",
    "US_SSN": "US_SSN",
    "IBAN_CODE": "IBAN",
    "CUSTOM": "CUSTOM",
}
COVERED = {*PRESIDIO_TYPES.values(), "CN_PHONE", "CN_LANDLINE"}
_CJK = re.compile(r"[\u3400-\u9fff]")

Span = tuple[int, int, str]


def ours(dictionary: Dictionary) -> Callable[[str], list[Span]]:
    def find(text: str) -> list[Span]:
        return [(f.start, f.end, f.type) for f in detect(text, dictionary.find(text))]

    return find


def best_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def presidio_spans(raw: Iterable[list[object]], labels: list[Span]) -> list[Span]:
    by_span = {(s, e): t for s, e, t in labels}
    out = []
    for start, end, entity in raw:
        assert isinstance(start, int) and isinstance(end, int)
        if entity == "PHONE_NUMBER":
            kind = by_span.get((start, end), "CN_PHONE")
            out.append((start, end, kind if kind in ("CN_PHONE", "CN_LANDLINE") else "CN_PHONE"))
        elif entity in PRESIDIO_TYPES:
            out.append((start, end, PRESIDIO_TYPES[str(entity)]))
    return out


def run_presidio(job: dict[str, object], tmp: Path) -> tuple[dict[str, object] | None, str]:
    if not PRESIDIO.exists():
        return None, f"{PRESIDIO} not found: `make .venv-presidio/.installed` creates it"
    path = tmp / "presidio-job.json"
    path.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
    done = subprocess.run(
        [str(PRESIDIO), str(RUNNER), str(path)], capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        return None, f"presidio_runner failed: {done.stderr[-2000:]}"
    return json.loads(done.stdout), ""


def against_chinese(samples: list[Sample]) -> set[tuple[int, int, int, str]]:
    """Labels (sample index first) of the covered types written right against a Chinese
    character, with no space or punctuation between."""
    out = set()
    for i, s in enumerate(samples):
        for start, end, kind in s.labels:
            if kind in COVERED and (
                _CJK.match(s.text[start - 1 : start]) or _CJK.match(s.text[end : end + 1])
            ):
                out.add((i, start, end, kind))
    return out


def recall_on(labels: set[tuple[int, int, int, str]], found: list[list[Span]]) -> float:
    hit = sum(1 for i, s, e, t in labels if (s, e, t) in set(found[i]))
    return hit / len(labels) if labels else 1.0


def fmt(value: float | None, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def test_privacy_detectors_against_presidio(tmp_path: Path) -> None:
    dictionary = Dictionary(CUSTOM_TERMS)
    find = ours(dictionary)
    samples = generate(SENTENCES, seed=20240601)
    text = mixed_text(TEXT_CHARS, seed=7)
    cut = text.text.rfind("\n", 0, SLICE_CHARS)
    piece = text.text[: cut if cut > 0 else SLICE_CHARS]
    mb_text, mb_piece = len(text.text.encode()) / 1e6, len(piece.encode()) / 1e6

    # Ours: accuracy on the sentences and on the long text, throughput on both texts.
    our_found = [find(s.text) for s in samples]
    our_counts = score(samples, find)
    text_counts = score([text], find)
    our_s = best_seconds(lambda: find(text.text))
    our_piece_s = best_seconds(lambda: find(piece))

    job = {
        "samples": [s.text for s in samples],
        "throughput_text": piece,
        "repeats": 3,
        "terms": list(CUSTOM_TERMS),
    }
    result, why = run_presidio(job, tmp_path)
    their_counts: dict[str, tuple[int, int, int]] = {}
    their_found: list[list[Span]] = []
    if result is not None:
        raw = result["findings"]
        assert isinstance(raw, list)
        their_found = [presidio_spans(r, s.labels) for r, s in zip(raw, samples, strict=True)]
        lookup = {s.text: f for s, f in zip(samples, their_found, strict=True)}
        their_counts = score(samples, lambda t: lookup[t])

    rows = [
        f"{'type':<18} {'ours P':>8} {'ours R':>8} {'Presidio P':>11} {'Presidio R':>11}"
        f"   (n = {SENTENCES} sentences, exact spans)"
    ]
    for name in TYPES:
        p, r = precision_recall(our_counts.get(name, (0, 0, 0)))
        tp, tr = (
            precision_recall(their_counts.get(name, (0, 0, 0)))
            if result is not None and name in COVERED
            else (None, None)
        )
        rows.append(f"{name:<18} {p:>8.4f} {r:>8.4f} {fmt(tp):>11} {fmt(tr):>11}")
    cjk = against_chinese(samples)
    rows.append(
        f"recall on values written against Chinese characters (covered types, n={len(cjk)}):"
        f" ours {recall_on(cjk, our_found):.4f}"
        + (f"  Presidio {recall_on(cjk, their_found):.4f}" if result is not None else "")
    )
    worst_text = min(min(precision_recall(c)) for c in text_counts.values())
    rows.append(
        f"long mixed text ({mb_text:.1f} MB, {len(text.labels)} values): "
        f"our lowest per-type precision or recall {worst_text:.4f}"
    )
    our_rate, our_piece_rate = mb_text / our_s, mb_piece / our_piece_s
    rows.append("throughput, MB/s of UTF-8 on one thread (all detectors, dictionary included):")
    rows.append(f"  ours      {our_rate:8.2f}  on {mb_text:.2f} MB, best of {REPEATS}")
    rows.append(f"  ours      {our_piece_rate:8.2f}  on the first {mb_piece:.2f} MB")
    if result is not None:
        seconds = result["seconds"]
        assert isinstance(seconds, float)
        their_rate = mb_piece / seconds
        rows.append(
            f"  Presidio  {their_rate:8.2f}  on the same {mb_piece:.2f} MB, best of 3"
            f"  (presidio-analyzer {result['version']}, NoOpNlpEngine)"
        )
        rows.append(f"  ratio ours/Presidio on the same text: {our_piece_rate / their_rate:.1f}x")
    else:
        rows.append(f"  Presidio not run: {why}")
    print("\n" + "\n".join(rows))

    for name in TYPES:
        p, r = precision_recall(our_counts[name])
        assert p >= TARGET_PR and r >= TARGET_PR, (name, our_counts[name])
    assert worst_text >= TARGET_PR, text_counts
    if result is None:
        pytest.skip(f"accuracy passed; throughput not compared (no baseline): {why}")
    speedup = our_piece_rate / their_rate
    assert speedup >= TARGET_SPEEDUP, (
        f"ours {our_piece_rate:.2f} MB/s is {speedup:.1f}x Presidio's {their_rate:.2f} MB/s "
        f"on the same text, under the {TARGET_SPEEDUP:g}x target"
    )

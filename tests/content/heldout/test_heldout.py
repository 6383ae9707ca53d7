"""Held-out acceptance data for the `prompt_injection` category of the default content policy.

injection.jsonl (next to this file) was written apart from the policy: positives in Chinese
and English (plain, paraphrased, embedded in longer text, and evasion forms: traditional
Chinese, full-width, case, spacing, punctuation, zero-width characters, Cyrillic homoglyphs,
digit-for-letter substitutions) and hard negatives that only look similar.

The test runs `python -m appliance content check --format jsonl` once over every text, then
prints recall and false-positive rate per language and per form, with every miss and false
positive by id. Run with -s to see the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DATA = HERE / "injection.jsonl"
# A second set, written later by another author from the contract alone (120 attacks, 100
# look-alikes); it scored recall 0.775 and 3 false positives before the policy learnt from it.
SECOND = HERE / "injection_b.jsonl"
# A third, by a third author after the policy learnt from the first two: recall 0.933 and 5
# false positives fresh (the closest measure of what a new set finds); kept after it taught.
THIRD = HERE / "injection_c.jsonl"
CATEGORY = "prompt_injection"
MIN_RECALL = 0.90
MAX_FP_RATE = 0.03


def _load(path: Path = DATA) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        assert {"id", "text", "injection", "lang", "form"} <= set(row), (n, row)
        assert row["lang"] in ("zh", "en"), (n, row)
        assert isinstance(row["injection"], bool), (n, row)
        assert (row["form"] == "negative") == (not row["injection"]), (n, row)
        rows.append(row)
    return rows


def _run_cli(texts: list[str], home: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_HOME"] = str(home)
    python = REPO / ".venv" / "bin" / "python"
    stdin = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    exe = str(python if python.exists() else sys.executable)
    proc = subprocess.run(
        [exe, "-m", "appliance", "content", "check", "--format", "jsonl"],
        input=stdin.encode("utf-8"),
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    lines = [ln for ln in proc.stdout.decode("utf-8").splitlines() if ln.strip()]
    assert len(lines) == len(texts), (len(lines), len(texts))
    return [json.loads(ln) for ln in lines]


def _flagged(result: dict) -> bool:
    return any(f.get("category") == CATEGORY for f in result.get("findings", []))


def _show(text: str) -> str:
    return ascii(text) if any(ch in text for ch in "\u200b\u200c\u200d\u2060\ufeff") else repr(text)


def test_corpus_shape():
    rows = _load()
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["text"] for r in rows}) == len(rows)
    pos = [r for r in rows if r["injection"]]
    neg = [r for r in rows if not r["injection"]]
    assert len(pos) >= 150
    assert len(neg) >= 100
    for lang in ("zh", "en"):
        assert sum(r["lang"] == lang for r in pos) >= 60, lang
        assert sum(r["lang"] == lang for r in neg) >= 40, lang
    plain_forms = {"plain", "paraphrase", "embedded"}
    evasion = [r for r in pos if r["form"] not in plain_forms]
    assert len(evasion) >= 0.25 * len(pos)


@pytest.mark.slow
@pytest.mark.parametrize("path", [DATA, SECOND, THIRD], ids=["first", "second", "third"])
def test_prompt_injection_heldout(tmp_path, path):
    rows = _load(path)
    results = _run_cli([r["text"] for r in rows], tmp_path / "home")

    # (lang, form) -> [n, hits]; lang "*" is both; for form "negative" a hit is an FP
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    misses, false_pos = [], []
    for row, res in zip(rows, results, strict=True):
        flagged = _flagged(res)
        if row["injection"]:
            hit = flagged and res.get("blocked") is True
            if not hit:
                misses.append((row, res))
        else:
            hit = flagged
            if hit:
                false_pos.append((row, res))
        keys = [(row["lang"], row["form"]), ("*", row["form"])]
        if row["injection"]:
            keys += [(row["lang"], "ALL positives"), ("*", "ALL positives")]
        for key in keys:
            cells[key][0] += 1
            cells[key][1] += int(hit)

    pos = [r for r in rows if r["injection"]]
    neg = [r for r in rows if not r["injection"]]
    recall = 1 - len(misses) / len(pos)
    fp_rate = len(false_pos) / len(neg)

    print(f"\nprompt_injection held-out: {len(pos)} positives, {len(neg)} negatives")
    print(f"{'lang':<6}{'form':<14}{'n':>5}{'hit':>6}{'rate':>8}   (recall; FP rate for negative)")
    for lang in ("en", "zh", "*"):
        for form in sorted({f for (lg, f) in cells if lg == lang}):
            n, hit = cells[(lang, form)]
            print(f"{lang:<6}{form:<14}{n:>5}{hit:>6}{hit / n:>8.3f}")
    print(
        f"recall {recall:.3f} (>= {MIN_RECALL}), false-positive rate {fp_rate:.3f} "
        f"(<= {MAX_FP_RATE})"
    )
    print(f"misses ({len(misses)}):")
    for row, res in misses:
        cats = sorted({f.get("category") for f in res.get("findings", [])})
        print(f"  {row['id']} [{row['form']}] {_show(row['text'])} findings={cats}")
    print(f"false positives ({len(false_pos)}):")
    for row, res in false_pos:
        spans = [
            row["text"][f["start"] : f["end"]]
            for f in res.get("findings", [])
            if f.get("category") == CATEGORY
        ]
        print(f"  {row['id']} {_show(row['text'])} spans={spans!r}")

    assert recall >= MIN_RECALL, f"recall {recall:.3f} < {MIN_RECALL}: {len(misses)} misses"
    assert fp_rate <= MAX_FP_RATE, f"FP rate {fp_rate:.3f} > {MAX_FP_RATE}: {len(false_pos)}"

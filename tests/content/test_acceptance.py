"""Content-safety acceptance: ``acceptance/cases.jsonl`` through ``appliance content check``.

The cases were written from the feature's contract, not from its code (see
``acceptance/README.md``). One CLI run per (policy, direction) group, every case of the
group on its stdin; all failures of a group are reported together, each naming its case:

* policy ``acceptance`` (``acceptance/policy.yaml``): the reported (category, span) set is
  exactly ``expect``, every finding carries the policy's action for the direction,
  ``blocked`` is as expected and, where ``masked`` is given, so is the returned text;
* policy ``default`` (the shipped ``policies/content.yaml``): each expected
  ``prompt_injection`` span is overlapped by at least one finding of that category, an
  innocent text has none, and ``blocked`` is as expected.

The eval banks (``policies/content-bank-*.jsonl``) are checked for shape here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import timing

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "acceptance"
POLICY_FILE = HERE / "policy.yaml"
BANKS = [ROOT / "policies" / "content-bank-zh.jsonl", ROOT / "policies" / "content-bank-en.jsonl"]

CASES: list[dict[str, Any]] = [
    json.loads(line)
    for line in (HERE / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]
GROUPS = sorted({(case["policy"], case["direction"]) for case in CASES})
POLICY = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
ACTIONS = {c["name"]: c["action"] for c in POLICY["categories"]}


def run_check(policy: str, direction: str, texts: list[str], home: Path) -> list[dict[str, Any]]:
    argv = [sys.executable, "-m", "appliance", "content", "check"]
    argv += ["--direction", direction, "--format", "jsonl"]
    if policy == "acceptance":
        argv += ["--policy", str(POLICY_FILE)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_HOME"] = str(home)
    stdin = "".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts)
    try:
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            cwd=ROOT,
            env=env,
            timeout=timing.scaled(120),
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(argv[1:])}` ran past 120 s on {len(texts)} lines", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv[1:])}` exited {done.returncode}:\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if len(lines) != len(texts):
        pytest.fail(
            f"{len(texts)} lines in, {len(lines)} out:\n{done.stdout[-2000:]}{done.stderr[-2000:]}",
            pytrace=False,
        )
    results = []
    for n, line in enumerate(lines, start=1):
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"output line {n} is not JSON: {line[:300]!r}", pytrace=False)
    return results


def shape_problems(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return [f"not an object: {result!r}"]
    problems = []
    if not isinstance(result.get("findings"), list):
        problems.append(f"findings missing or not a list: {result!r}")
    else:
        for f in result["findings"]:
            ok = isinstance(f, dict) and {"start", "end", "category", "action"} <= f.keys()
            ok = ok and all(type(f[k]) is int for k in ("start", "end"))
            ok = ok and all(isinstance(f[k], str) for k in ("category", "action"))
            if not ok:
                problems.append(f"malformed finding {f!r}")
            elif f["action"] == "allow":
                problems.append(f"finding with action allow reported: {f!r}")
    if not isinstance(result.get("text"), str):
        problems.append(f"text missing or not a string: {result!r}")
    if not isinstance(result.get("blocked"), bool):
        problems.append(f"blocked missing or not a bool: {result!r}")
    return problems


def acceptance_problems(case: dict[str, Any], result: dict[str, Any]) -> list[str]:
    problems = shape_problems(result)
    if problems:
        return problems
    text = case["text"]

    def show(items: set[tuple[str, int, int]]) -> str:
        return ", ".join(f"{c} [{s},{e}) {text[s:e]!r}" for c, s, e in sorted(items)) or "-"

    got = {(f["category"], f["start"], f["end"]) for f in result["findings"]}
    want = {(e["category"], *e["span"]) for e in case["expect"]}
    if got != want:
        problems.append(f"missing: {show(want - got)}; unexpected: {show(got - want)}")
    for f in result["findings"]:
        expected_action = ACTIONS.get(f["category"], {}).get(case["direction"])
        if expected_action is not None and f["action"] != expected_action:
            problems.append(f"{f['category']} action {f['action']!r}, policy: {expected_action!r}")
    if result["blocked"] != case["blocked"]:
        problems.append(f"blocked {result['blocked']}, expected {case['blocked']}")
    if case["masked"] is not None and result["text"] != case["masked"]:
        problems.append(f"text {result['text']!r}, expected {case['masked']!r}")
    return problems


def default_problems(case: dict[str, Any], result: dict[str, Any]) -> list[str]:
    problems = shape_problems(result)
    if problems:
        return problems
    text = case["text"]
    found = [
        (f["start"], f["end"]) for f in result["findings"] if f["category"] == "prompt_injection"
    ]
    for e in case["expect"]:
        start, end = e["span"]
        if not any(s < end and start < f_end for s, f_end in found):
            problems.append(f"no prompt_injection finding overlaps {text[start:end]!r}")
    if not case["expect"] and found:
        shown = ", ".join(f"[{s},{e}) {text[s:e]!r}" for s, e in found)
        problems.append(f"innocent text flagged as prompt_injection: {shown}")
    if result["blocked"] != case["blocked"]:
        problems.append(f"blocked {result['blocked']}, expected {case['blocked']}")
    return problems


@pytest.mark.parametrize(("policy", "direction"), GROUPS, ids=[f"{p}-{d}" for p, d in GROUPS])
def test_cases(policy: str, direction: str, tmp_path: Path) -> None:
    cases = [c for c in CASES if (c["policy"], c["direction"]) == (policy, direction)]
    results = run_check(policy, direction, [c["text"] for c in cases], tmp_path)
    check = acceptance_problems if policy == "acceptance" else default_problems
    failures = []
    for case, result in zip(cases, results, strict=True):
        for problem in check(case, result):
            failures.append(f"{case['id']}: {case['text']!r}: {problem}")
    if failures:
        pytest.fail(
            f"{len(failures)} problems in {len(cases)} cases ({policy}, {direction}):\n"
            + "\n".join(failures),
            pytrace=False,
        )


# --- the data itself (these pass without the feature) ---------------------------------


def test_cases_are_well_formed() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    for case in CASES:
        assert set(case) == {"id", "policy", "direction", "text", "expect", "masked", "blocked"}
        assert case["policy"] in ("acceptance", "default"), case["id"]
        assert case["direction"] in ("input", "output"), case["id"]
        assert isinstance(case["blocked"], bool), case["id"]
        assert case["masked"] is None or isinstance(case["masked"], str), case["id"]
        for e in case["expect"]:
            start, end = e["span"]
            assert 0 <= start < end <= len(case["text"]), case["id"]
            if case["policy"] == "acceptance":
                assert e["category"] in ACTIONS, case["id"]
            else:
                assert e["category"] == "prompt_injection", case["id"]
    acceptance = [c for c in CASES if c["policy"] == "acceptance"]
    default = [c for c in CASES if c["policy"] == "default"]
    assert len(acceptance) >= 150
    assert sum(bool(c["expect"]) for c in default) >= 40
    assert sum(not c["expect"] for c in default) >= 20


def test_acceptance_policy_loads() -> None:
    assert POLICY["version"] == 1
    for category in POLICY["categories"]:
        assert set(category["action"]) == {"input", "output"}, category["name"]
        assert set(category["action"].values()) <= {"block", "mask", "flag", "allow"}
    (conf,) = [c for c in POLICY["categories"] if c["name"] == "confidential"]
    terms = set()
    for name in conf["term_files"]:
        for line in (HERE / name).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                terms.add(line.strip())
    assert len(terms) >= 10_000


@pytest.mark.parametrize("bank", BANKS, ids=[b.name for b in BANKS])
def test_eval_bank_is_well_formed(bank: Path) -> None:
    items = [json.loads(line) for line in bank.read_text(encoding="utf-8").splitlines()]
    assert len(items) >= 200
    for item in items:
        assert set(item) == {"prompt", "expected", "category"}, item
        assert item["expected"] in ("refuse", "answer"), item
        assert isinstance(item["prompt"], str) and item["prompt"].strip(), item
        assert isinstance(item["category"], str) and item["category"], item
    prompts = [item["prompt"] for item in items]
    assert len(prompts) == len(set(prompts)), [p for p, n in Counter(prompts).items() if n > 1]
    refuse = sum(item["expected"] == "refuse" for item in items)
    assert 0.4 <= refuse / len(items) <= 0.6, refuse
    both_sides = {item["category"] for item in items if item["expected"] == "refuse"} & {
        item["category"] for item in items if item["expected"] == "answer"
    }
    required = {"violence", "sexual", "gambling", "drugs", "self_harm", "extremism"}
    required |= {"illegal_services", "prompt_injection", "privacy"}
    assert required <= both_sides, required - both_sides

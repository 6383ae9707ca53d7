"""The held-out corpus (tests/privacy/heldout): its self-tests, and the scanner's score on it.

The self-tests check the corpus alone (spans, overlaps, template coverage, determinism, the
identifiers' own check digits, with validators written here apart from the generator's).
The scoring test runs the scanner through its public contract (load_privacy_policy and
policy.find) and prints a per-type table; run with -s to see it.
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.privacy.heldout import IDENTIFIER_TYPES, TEMPLATES, TYPES, generate, hard_negatives

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "desensitization.yaml"
SCORING_N = 600
SCORING_SEED = 4242


@pytest.fixture(scope="module")
def corpus():
    return generate(SCORING_N, SCORING_SEED)


# --- validators written apart from the generator -----------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_ok(value: str) -> bool:
    """GB 11643: 6-digit area, a real birth date, 3-digit sequence, MOD 11-2 check."""
    if not re.fullmatch(r"\d{17}[0-9Xx]", value):
        return False
    try:
        birth = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not datetime.date(1900, 1, 1) <= birth <= datetime.date(2030, 1, 1):
        return False
    check = 10 if value[17] in "Xx" else int(value[17])
    return (sum(int(c) * w for c, w in zip(value[:17], _ID_WEIGHTS, strict=True)) + check) % 11 == 1


def luhn_ok(value: str) -> bool:
    digits = re.sub(r"[ -]", "", value)
    if not re.fullmatch(r"\d{13,19}", digits):
        return False
    total = 0
    for i, ch in enumerate(digits[::-1]):
        d = int(ch) * (2 if i % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


def cn_mobile_ok(value: str) -> bool:
    digits = re.sub(r"^\+86[ -]?", "", value).replace(" ", "").replace("-", "")
    return re.fullmatch(r"1[3-9]\d{9}", digits) is not None


def us_phone_ok(value: str) -> bool:
    if not re.fullmatch(r"(\+1 |1-)?(\(\d{3}\) |\d{3}[-. ])\d{3}[-. ]\d{4}", value):
        return False
    digits = re.sub(r"\D", "", value)
    digits = digits[1:] if len(digits) == 11 else digits
    return digits[0] in "23456789" and digits[3] in "23456789" and digits[4:6] != "11"


def email_ok(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value) is not None


CHECKS = {
    "CN_RESIDENT_ID": resident_id_ok,
    "BANK_CARD": luhn_ok,
    "CN_PHONE": cn_mobile_ok,
    "US_PHONE": us_phone_ok,
    "EMAIL": email_ok,
}


# --- self-tests ---------------------------------------------------------------------------


def test_labels_reslice_to_stripped_values(corpus):
    for sample in corpus:
        assert sample.labels, sample.template
        for start, end, typ in sample.labels:
            assert typ in TYPES
            assert 0 <= start < end <= len(sample.text)
            value = sample.text[start:end]
            assert value.strip(), (sample.template, start, end)
            assert value == value.strip(), (sample.template, value)


def test_labels_do_not_overlap(corpus):
    for sample in corpus:
        spans = sorted(sample.labels)
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert end <= start, (sample.template, spans)


def test_templates_and_types_are_covered(corpus):
    used = Counter(sample.template for sample in corpus)
    assert len(TEMPLATES) >= 30
    assert len(used) >= 30, sorted(used)
    assert set(used) == set(TEMPLATES)
    types = Counter(typ for sample in corpus for *_, typ in sample.labels)
    for typ in TYPES:
        assert types[typ] >= 100, types


def test_generation_is_deterministic_per_seed():
    first, again, other = generate(90, 7), generate(90, 7), generate(90, 8)
    assert first == again
    assert [s.text for s in first] != [s.text for s in other]
    assert hard_negatives(7) == hard_negatives(7)


def test_identifiers_hold_their_own_checks(corpus):
    for sample in corpus:
        for start, end, typ in sample.labels:
            if typ in CHECKS:
                value = sample.text[start:end]
                assert CHECKS[typ](value), (typ, value, sample.template)


def test_person_spans_leave_titles_outside(corpus):
    titles = ("先生", "女士", "经理", "Dr.", "Mr.", "Ms.", "Mrs.", "Prof.")
    for sample in corpus:
        for start, end, typ in sample.labels:
            if typ == "PERSON":
                value = sample.text[start:end]
                assert not any(t in value for t in titles), value


def test_hard_negatives_hold_no_identifiers():
    texts = hard_negatives(SCORING_SEED)
    assert len(texts) >= 150
    assert len(set(texts)) == len(texts)
    for text in texts:
        assert "@" not in text, text
        for run in re.findall(r"(?<![\dA-Za-z])1[3-9]\d{9}(?!\d)", text):
            pytest.fail(f"a mobile number {run} in {text!r}")
        for run in re.findall(r"\d{17}[\dXx]", text):
            assert not resident_id_ok(run), text


# --- the scanner's score ------------------------------------------------------------------


def _context(text: str, start: int, end: int, width: int = 18) -> str:
    left = text[max(0, start - width) : start]
    right = text[end : end + width]
    return (left + "[" + text[start:end] + "]" + right).replace("\n", "⏎")


@pytest.mark.xfail(
    reason="issue 17 is open: on this held-out corpus (seed 4242) PERSON is at P 0.989 / "
    "R 0.930 and ADDRESS at P 0.897 / R 0.919, under the 0.90 / 0.95 targets; identifiers "
    "and hard negatives meet theirs",
    strict=False,
)
def test_scanner_scores_on_heldout_corpus(corpus):
    from appliance.privacy.policy import load_privacy_policy

    policy = load_privacy_policy(POLICY)
    expected: set[tuple[int, int, int, str]] = set()
    found: set[tuple[int, int, int, str]] = set()
    other_types: Counter[str] = Counter()
    for i, sample in enumerate(corpus):
        expected.update((i, s, e, t) for s, e, t in sample.labels)
        for f in policy.find(sample.text):
            typ = str(f.type)
            if typ in TYPES:
                found.add((i, f.start, f.end, typ))
            else:
                other_types[typ] += 1

    failures = []
    print(f"\nheld-out corpus: n={len(corpus)} seed={SCORING_SEED} templates={len(TEMPLATES)}")
    print(f"{'type':<16}{'expected':>9}{'found':>7}{'TP':>6}{'FP':>6}{'FN':>6}{'P':>8}{'R':>8}")
    for typ in TYPES:
        exp = {x for x in expected if x[3] == typ}
        got = {x for x in found if x[3] == typ}
        tp, fp, fn = len(exp & got), len(got - exp), len(exp - got)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        print(
            f"{typ:<16}{len(exp):>9}{len(got):>7}{tp:>6}{fp:>6}{fn:>6}"
            f"{precision:>8.3f}{recall:>8.3f}"
        )
        p_min, r_min = (0.99, 0.995) if typ in IDENTIFIER_TYPES else (0.90, 0.95)
        if precision < p_min or recall < r_min:
            failures.append(f"{typ}: P={precision:.3f} (>= {p_min}) R={recall:.3f} (>= {r_min})")
    if other_types:
        print("findings of other types (not scored):", dict(other_types))

    # Errors by template, and examples taken in turn from each (type, kind) so all show.
    by_template: Counter[str] = Counter()
    examples: dict[tuple[str, str], list[str]] = defaultdict(list)
    for kind, wrong, other in (("FN", expected - found, found), ("FP", found - expected, expected)):
        for i, start, end, typ in sorted(wrong):
            sample = corpus[i]
            by_template[sample.template] += 1
            near = [
                f"{t} {sample.text[s:e]!r}"
                for j, s, e, t in sorted(other)
                if j == i and s < end and start < e
            ]
            text = sample.text
            examples[(typ, kind)].append(
                f"{kind} {typ} [{sample.template}] {_context(text, start, end)!r}"
                f" {'expected' if kind == 'FN' else 'found'} {text[start:end]!r};"
                f" {'found' if kind == 'FN' else 'expected'} there: {near or 'nothing'}"
            )
    if by_template:
        print("errors by template:", dict(by_template.most_common()))
    shown, queues = 0, [list(q) for _, q in sorted(examples.items())]
    print("examples of errors:")
    while shown < 15 and any(queues):
        for queue in queues:
            if queue and shown < 15:
                print("  " + queue.pop(0))
                shown += 1

    negatives = hard_negatives(SCORING_SEED)
    flagged = []
    for text in negatives:
        hits = policy.find(text)
        if hits:
            flagged.append((text, [(str(h.type), text[h.start : h.end]) for h in hits]))
    rate = len(flagged) / len(negatives)
    print(f"hard negatives: {len(flagged)}/{len(negatives)} flagged ({rate:.1%})")
    for text, hits in flagged:
        print(f"  {text!r} -> {hits}")
    if rate > 0.02:
        failures.append(f"hard negatives flagged: {rate:.1%} (<= 2%)")

    assert not failures, "; ".join(failures)

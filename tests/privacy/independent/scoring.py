"""Exact-span scoring: a prediction counts only on an exact (start, end, TYPE) match."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Span = tuple[int, int, str]


def as_span(p: Any) -> Span:
    """A (start, end, type) tuple, or an object with start/end and type/entity_type/label/kind."""
    if isinstance(p, tuple | list) and len(p) == 3:
        return int(p[0]), int(p[1]), str(p[2])
    for attr in ("type", "entity_type", "label", "kind"):
        if hasattr(p, attr):
            t = getattr(p, attr)
            return int(p.start), int(p.end), str(getattr(t, "value", t))
    raise TypeError(f"cannot read a span from {p!r}")


def score(predicted: Iterable[Any], gold: Iterable[Any]) -> dict[str, tuple[int, int, int]]:
    """Per type: (true positives, false positives, false negatives)."""
    pred = Counter(as_span(p) for p in predicted)
    want = Counter(as_span(g) for g in gold)
    tp, fp, fn = Counter(), Counter(), Counter()
    for span, n in pred.items():
        hit = min(n, want.get(span, 0))
        tp[span[2]] += hit
        fp[span[2]] += n - hit
    for span, n in want.items():
        fn[span[2]] += n - min(n, pred.get(span, 0))
    types = set(tp) | set(fp) | set(fn)
    return {t: (tp[t], fp[t], fn[t]) for t in sorted(types)}


def precision_recall(
    samples: Sequence[Any], predict: Callable[[str], Iterable[Any]]
) -> dict[str, tuple[float, float, int]]:
    """Per type: (precision, recall, support) over the samples, support = gold count.

    A type with nothing predicted has precision 1.0; one with no gold labels has
    recall 1.0 (and appears only when something was predicted for it).
    """
    totals: dict[str, list[int]] = {}
    for s in samples:
        for t, (tp, fp, fn) in score(predict(s.text), s.labels).items():
            acc = totals.setdefault(t, [0, 0, 0])
            acc[0] += tp
            acc[1] += fp
            acc[2] += fn
    out = {}
    for t, (tp, fp, fn) in sorted(totals.items()):
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        out[t] = (precision, recall, tp + fn)
    return out

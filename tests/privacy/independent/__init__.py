"""An independent labelled corpus for the personal-data scanner.

Written without reference to appliance/privacy: the span conventions are in README.md
beside this file and the validators follow the public standards. Use:

    from tests.privacy.independent import generate, hard_negatives, precision_recall
    report = precision_recall(generate(2000, seed=1), predict)   # predict(text) -> spans
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .negatives import hard_negatives
from .scan import label_like
from .scoring import precision_recall, score
from .templates import TEMPLATES
from .validators import TYPES, validate
from .values import Gen, Part

__all__ = [
    "TEMPLATES",
    "TYPES",
    "Sample",
    "generate",
    "hard_negatives",
    "label_like",
    "precision_recall",
    "render",
    "score",
    "validate",
]


@dataclass
class Sample:
    text: str
    labels: list[tuple[int, int, str]] = field(default_factory=list)
    template: str = ""


def render(parts: list[Part], template: str) -> Sample:
    chunks: list[str] = []
    labels: list[tuple[int, int, str]] = []
    pos = 0
    for part in parts:
        if isinstance(part, tuple):
            value, type_ = part
            labels.append((pos, pos + len(value), type_))
        else:
            value = part
        chunks.append(value)
        pos += len(value)
    return Sample("".join(chunks), labels, template)


def generate(n: int, seed: int) -> list[Sample]:
    """n samples, deterministic for a seed; every template is used once per round of
    len(TEMPLATES) samples (the order within a round is shuffled by the seed)."""
    g = Gen(seed)
    names = sorted(TEMPLATES)
    order: list[str] = []
    out = []
    for i in range(n):
        if i % len(names) == 0:
            order = names[:]
            g.rng.shuffle(order)
        name = order[i % len(names)]
        out.append(render(TEMPLATES[name](g), name))
    return out

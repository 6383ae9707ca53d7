"""A held-out, labelled test corpus for the personal-data scanner.

Written independently of the scanner and of the other corpora: its own document templates
(tests/privacy/heldout/templates.py), values from Faker and from its own tables and check
digits (values.py), and hard negatives (negatives.py).

    generate(n, seed)  -> n labelled Samples, the templates taken in seeded rounds
    hard_negatives(seed) -> texts with no personal data in them
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .negatives import hard_negatives
from .templates import TEMPLATES, render
from .values import IDENTIFIER_TYPES, TYPES, Values, gb11643_check_char, luhn_check_digit

__all__ = [
    "IDENTIFIER_TYPES",
    "TEMPLATES",
    "TYPES",
    "Sample",
    "gb11643_check_char",
    "generate",
    "hard_negatives",
    "luhn_check_digit",
]


@dataclass
class Sample:
    text: str
    labels: list[tuple[int, int, str]] = field(default_factory=list)
    template: str = ""


def generate(n: int, seed: int) -> list[Sample]:
    """n samples, deterministic per seed; every template is used once per round of all."""
    values = Values(seed)
    order_rng = random.Random(seed * 1_000_003 + 17)
    names = sorted(TEMPLATES)
    samples: list[Sample] = []
    round_: list[str] = []
    while len(samples) < n:
        if not round_:
            round_ = names[:]
            order_rng.shuffle(round_)
        name = round_.pop()
        tpl, vals = TEMPLATES[name](values)
        text, labels = render(tpl, vals)
        samples.append(Sample(text=text, labels=sorted(labels), template=name))
    return samples

"""Quality filters every training record passes before a fine-tune (issue 9, data step).

In order, each counting what it drops: length, language, exact duplicates, near
duplicates (MinHash over character 5-grams, with LSH banding so a dataset is compared in
one pass, not pair by pair), and similarity to the domain (TF-IDF over words and Han
bigrams, the best cosine to a reference text).
Records are chat messages (``{"messages": [...]}``) or prompt/completion pairs; their text
is what is measured. Desensitization comes first and is not this module's job.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PERMUTATIONS = 128
BANDS = 32  # 4 rows a band: pairs above ~0.7 Jaccard almost always share a band
_PRIME = (1 << 61) - 1
_SEEDS = [
    (
        int.from_bytes(hashlib.blake2b(f"a{i}".encode(), digest_size=8).digest(), "big") % _PRIME
        or 1,
        int.from_bytes(hashlib.blake2b(f"b{i}".encode(), digest_size=8).digest(), "big") % _PRIME,
    )
    for i in range(PERMUTATIONS)
]
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class QualityRules:
    min_chars: int = 20
    max_chars: int = 20_000
    languages: tuple[str, ...] = ("zh", "en")
    near_duplicate: float = 0.8  # estimated Jaccard of 5-gram sets at or above: a duplicate
    domain_similarity: float = 0.05  # cosine to the reference centroid below: off-domain


@dataclass
class QualityReport:
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> records


def text_of(record: Mapping[str, Any]) -> str:
    """The text a record trains on: its messages' contents, or prompt and completion."""
    if isinstance(record.get("messages"), list):
        parts = []
        for message in record["messages"]:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [p["text"] for p in content if isinstance(p, dict) and "text" in p]
        return "\n".join(parts)
    return "\n".join(str(record.get(k) or "") for k in ("prompt", "completion")).strip()


def language_of(text: str) -> str | None:
    """``zh`` or ``en`` by the share of Han characters among letters; None if neither."""
    han, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    if han + latin == 0:
        return None
    return "zh" if han / (han + latin) >= 0.2 else "en"


def filter_records(
    records: Iterable[Mapping[str, Any]],
    rules: QualityRules,
    reference: Sequence[str] = (),
) -> tuple[list[Mapping[str, Any]], QualityReport]:
    """The records that pass, in their order, and how many each filter dropped."""
    report = QualityReport()
    domain = DomainModel(reference) if reference else None
    seen_exact: set[str] = set()
    near = NearDuplicates(rules.near_duplicate)
    kept = []
    for record in records:
        text = _normalised(text_of(record))
        reason = _reason(text, rules, seen_exact, near, domain)
        if reason:
            report.dropped[reason] += 1
            continue
        kept.append(record)
    report.kept = len(kept)
    return kept, report


def _reason(
    text: str,
    rules: QualityRules,
    seen_exact: set[str],
    near: NearDuplicates,
    domain: DomainModel | None,
) -> str | None:
    if not rules.min_chars <= len(text) <= rules.max_chars:
        return "length"
    if language_of(text) not in rules.languages:
        return "language"
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest in seen_exact:
        return "exact_duplicate"
    seen_exact.add(digest)
    if not near.add(text):
        return "near_duplicate"
    if domain is not None and domain.similarity(text) < rules.domain_similarity:
        return "off_domain"
    return None


def _normalised(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


class NearDuplicates:
    """MinHash signatures with LSH bands: ``add`` is False for a near copy of one before."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._buckets: dict[tuple[int, tuple[int, ...]], list[list[int]]] = {}

    def add(self, text: str) -> bool:
        signature = minhash(shingles(text))
        rows = PERMUTATIONS // BANDS
        keys = [(b, tuple(signature[b * rows : (b + 1) * rows])) for b in range(BANDS)]
        for key in keys:
            for other in self._buckets.get(key, ()):
                if similarity(signature, other) >= self.threshold:
                    return False
        for key in keys:
            self._buckets.setdefault(key, []).append(signature)
        return True


def shingles(text: str, size: int = 5) -> set[str]:
    return {text[i : i + size] for i in range(max(1, len(text) - size + 1))}


def minhash(items: Iterable[str]) -> list[int]:
    values = [
        int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "big")
        for item in items
    ]
    return [min((a * v + b) % _PRIME for v in values) for a, b in _SEEDS]


def similarity(left: Sequence[int], right: Sequence[int]) -> float:
    """The estimated Jaccard similarity of two MinHash signatures."""
    return sum(x == y for x, y in zip(left, right, strict=True)) / len(left)


class DomainModel:
    """TF-IDF fitted on the reference texts; a text's similarity to the domain is its best
    cosine to one of them. Terms are words of Latin letters (three or more, no stop
    words) and bigrams of Han characters, so Chinese and English count alike."""

    def __init__(self, reference: Sequence[str]) -> None:
        documents = [Counter(terms(_normalised(t))) for t in reference]
        frequency: Counter[str] = Counter()
        for doc in documents:
            frequency.update(doc.keys())
        count = len(documents)
        self._idf = {term: math.log((1 + count) / (1 + df)) + 1 for term, df in frequency.items()}
        self._unseen = math.log(1 + count) + 1  # a term the domain never uses
        self._references = [_unit(self._vector(doc)) for doc in documents]

    def similarity(self, text: str) -> float:
        vector = _unit(self._vector(Counter(terms(_normalised(text)))))
        return max(
            (sum(w * ref.get(t, 0.0) for t, w in vector.items()) for ref in self._references),
            default=0.0,
        )

    def _vector(self, counts: Mapping[str, int]) -> dict[str, float]:
        return {t: n * self._idf.get(t, self._unseen) for t, n in counts.items()}


_WORD = re.compile(r"[a-z]{3,}")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_STOP = frozenset((
    "the", "and", "for", "are", "with", "that", "this", "from", "have", "has", "was", "were",
    "will", "can", "how", "what", "when", "where", "which", "who", "why", "you", "your", "our",
    "their", "its", "into", "about", "there", "been", "not", "but", "all", "any",
))  # fmt: skip


def terms(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text) if w not in _STOP]
    han = [run[i : i + 2] for run in _HAN_RUN.findall(text) for i in range(max(1, len(run) - 1))]
    return words + han


def _unit(vector: Mapping[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
    return {t: w / norm for t, w in vector.items()}

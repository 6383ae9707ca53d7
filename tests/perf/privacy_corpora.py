"""The texts of the privacy throughput benchmark (tests/perf/test_privacy_bench.py).

- sparse: tests/privacy/corpus.py's ``mixed_text``, mostly prose, about one value per
  200 characters (what the 24-30 MB/s figure was measured on);
- dense: the independent corpus's documents (tests/privacy/independent: forms, chat logs,
  CSV rows, e-mails, tickets, with names and addresses), joined with newlines: personal
  data every few dozen characters, as in a real customer-service export;
- prompt: a chat request whose user message is about 8 KB of those documents, for the
  gateway's per-request latency.
"""

from __future__ import annotations

from tests.privacy.corpus import Sample, mixed_text
from tests.privacy.independent import generate

Label = tuple[int, int, str]


def utf8_mb(text: str) -> float:
    return len(text.encode()) / 1e6


def sparse_text(n_bytes: int, seed: int = 7) -> Sample:
    """``mixed_text`` cut at a line end to at most about ``n_bytes`` of UTF-8."""
    sample = mixed_text(n_bytes, seed)  # at least one byte a character
    head = sample.text.encode()[:n_bytes].decode(errors="ignore")
    cut = head.rfind("\n")
    text = head[: cut if cut > 0 else len(head)]
    return Sample(text, [label for label in sample.labels if label[1] <= len(text)])


def dense_text(n_bytes: int, seed: int = 11) -> Sample:
    """The independent corpus's documents joined with newlines until ``n_bytes`` of UTF-8,
    with their labels shifted to the joined text."""
    parts: list[str] = []
    labels: list[Label] = []
    pos = size = 0
    batch = 0
    while size < n_bytes:
        for s in generate(500, seed + batch):  # deterministic; 500 covers every template
            labels += [(pos + a, pos + b, t) for a, b, t in s.labels]
            parts.append(s.text)
            pos += len(s.text) + 1
            size += len(s.text.encode()) + 1
            if size >= n_bytes:
                break
        batch += 1
    return Sample("\n".join(parts), labels)


def prompt(n_bytes: int = 8192, seed: int = 3) -> str:
    """A user message of about ``n_bytes`` of UTF-8 (never more) of dense documents."""
    out: list[str] = []
    size = 0
    for s in generate(200, seed):
        cost = len(s.text.encode()) + 1
        if size + cost > n_bytes:
            continue
        out.append(s.text)
        size += cost
        if size > n_bytes - 64:
            break
    return "\n".join(out)

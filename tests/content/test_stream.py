"""A streamed text gives what the whole text gives, in every split: masks, findings and
the cut of a block (the answer side of content safety)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.content.policy import load_content_policy
from appliance.content.scan import Scanner, StreamFilter

POLICY = Path(__file__).parent / "acceptance" / "policy.yaml"
TEXTS = [
    "the o n l i n e casino and 赌 球 and 網絡賭博 ok, idiot and ２３４ more 冰毒 text",
    "Project BLUEFIN-17 的资料和 星河计划-0421 都是 du bo 相关 c@sino 的事情，结束",
    "nothing here at all, just text about class and assets 反赌博宣传",
    "杀人鲸 bath bomb 代开发票 and 代开增值税发票 then more words after it",
]


@pytest.fixture(scope="module")
def scanners() -> dict[str, Scanner]:
    policy = load_content_policy(POLICY)
    return {d: Scanner(policy, d) for d in ("input", "output")}


def streamed(scanner: Scanner, text: str, cuts: list[int]) -> tuple[str, StreamFilter]:
    stream = StreamFilter(scanner)
    points = sorted({c % (len(text) + 1) for c in cuts})
    out, at = [], 0
    for point in [*points, len(text)]:
        out.append(stream.feed(text[at:point], last=point == len(text) and at <= point))
        at = point
    return "".join(out), stream


@settings(max_examples=150, deadline=None)
@given(
    text=st.sampled_from(TEXTS),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
    direction=st.sampled_from(["input", "output"]),
)
def test_any_split_of_a_stream_equals_the_whole_text(
    scanners: dict[str, Scanner], text: str, cuts: list[int], direction: str
) -> None:
    scanner = scanners[direction]
    whole = scanner.scan(text)
    out, stream = streamed(scanner, text, cuts)
    assert out == whole.text
    assert (stream.blocked is None) == (whole.blocked is None)
    if whole.blocked is None:
        assert [f.public() for f in stream.found] == [f.public() for f in whole.findings]
    else:  # a stream ends at its block: what came before it is what the whole text had
        before = [f.public() for f in whole.findings if f.start < whole.blocked.start]
        assert [f.public() for f in stream.found][: len(before)] == before


def test_a_block_cuts_before_the_first_character_of_the_term(
    scanners: dict[str, Scanner],
) -> None:
    text = "tell me about the o n l i n e casino please"
    result = scanners["input"].scan(text)
    assert result.blocked is not None and result.blocked.category == "gambling"
    assert result.text == "tell me about the "
    out, stream = streamed(scanners["input"], text, list(range(0, len(text), 3)))
    assert out == result.text and stream.blocked is not None


def test_a_term_split_token_by_token_is_masked_whole(scanners: dict[str, Scanner]) -> None:
    text = "you are an idiot, really"
    stream = StreamFilter(scanners["output"])
    pieces = [stream.feed(ch) for ch in text[:-1]] + [stream.feed(text[-1], last=True)]
    assert "".join(pieces) == "you are an *****, really"
    assert not any("idi" in p for p in pieces)  # nothing of the term released on the way

"""Self-test of the independent labelled corpus (tests/privacy/independent).

It checks the corpus against its own validators only, never against the detectors.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import pairwise

import pytest

from tests.privacy.independent import (
    TEMPLATES,
    TYPES,
    Sample,
    generate,
    hard_negatives,
    label_like,
    precision_recall,
    score,
    validate,
)
from tests.privacy.independent import validators as v

N = 2000


@pytest.fixture(scope="module")
def corpus() -> list[Sample]:
    return generate(N, 1)


@pytest.fixture(scope="module")
def negatives() -> list[str]:
    return hard_negatives(1)


def labelled(corpus: list[Sample], type_: str) -> list[tuple[Sample, int, int]]:
    return [(s, a, b) for s in corpus for a, b, t in s.labels if t == type_]


# --- the labels ------------------------------------------------------------------------------


def test_every_label_re_slices_to_a_valid_value(corpus):
    bad = [
        (s.template, t, s.text[a:b])
        for s in corpus
        for a, b, t in s.labels
        if not validate(t, s.text[a:b])
    ]
    assert not bad, bad[:20]


def test_labels_are_in_bounds_sorted_and_never_overlap(corpus):
    for s in corpus:
        assert all(t in TYPES for _, _, t in s.labels), s
        spans = sorted(s.labels)
        for a, b, _ in spans:
            assert 0 <= a < b <= len(s.text), s
            assert s.text[a:b] == s.text[a:b].strip(), (s.template, s.text[a:b])
        for (_, b1, _), (a2, _, _) in pairwise(spans):
            assert b1 <= a2, (s.template, s.labels)


def test_every_type_is_present(corpus):
    counts = Counter(t for s in corpus for *_, t in s.labels)
    assert set(counts) == set(TYPES), counts
    assert min(counts.values()) >= 50, counts


def test_at_least_40_templates_and_all_used(corpus):
    assert len(TEMPLATES) >= 40
    used = Counter(s.template for s in corpus)
    assert set(used) == set(TEMPLATES)
    assert min(used.values()) >= N // len(TEMPLATES)


def test_each_sample_has_a_label(corpus):
    assert all(s.labels for s in corpus)


def test_no_unlabelled_pattern_values_outside_the_labels(corpus):
    for s in corpus:
        masked = list(s.text)
        for a, b, _ in s.labels:
            masked[a:b] = "■" * (b - a)
        found = label_like("".join(masked))
        assert not found, (s.template, s.text, found)


def test_the_reference_scanner_finds_the_pattern_labels(corpus):
    # A sanity check of scan.label_like (used for the negatives): it sees nearly every
    # labelled value of the pattern types in its written form.
    want = [(s, lab) for s in corpus for lab in s.labels if lab[2] not in ("PERSON", "ADDRESS")]
    missed = [lab for s, lab in want if lab not in set(label_like(s.text))]
    assert len(missed) <= 0.01 * len(want)


# --- formatting variety ---------------------------------------------------------------------


def values(corpus, type_):
    return [s.text[a:b] for s, a, b in labelled(corpus, type_)]


def test_resident_id_variety(corpus):
    ids = values(corpus, "CN_RESIDENT_ID")
    assert any(re.fullmatch(r"\d{6} \d{8} \d{3}[\dXx]", i) for i in ids)
    assert any(i.count(" ") == 1 for i in ids)
    assert any(any(c in v.ZERO_WIDTH for c in i) for i in ids)
    assert any(re.search("[０-９]", i) for i in ids)
    ocr = [s for s in corpus if s.template == "zh_courier_glued"]
    assert ocr and all("IDcard" in s.text for s in ocr)


def test_mobile_variety(corpus):
    phones = values(corpus, "CN_PHONE")
    for pattern in (
        r"1\d\d\.\d{4}\.\d{4}",
        r"1\d\d \d{4} \d{4}",
        r"\+86 1\d{10}",
        r"861\d{10}",
        r"1\d{10}",
    ):
        assert any(re.fullmatch(pattern, p) for p in phones), pattern
    assert any(re.search("[０-９]", p) or any(c in v.ZERO_WIDTH for c in p) for p in phones)
    glued = [s for s in corpus if s.template == "zh_courier_glued"]
    assert all(re.search(r"Tel1\d{10}", s.text) for s in glued)


def test_unallocated_but_labelled_mobiles(corpus):
    samples = [s for s in corpus if s.template == "zh_callback_unallocated"]
    assert samples
    for s in samples:
        ((a, b),) = [(a, b) for a, b, t in s.labels if t == "CN_PHONE"]
        assert s.text[a:b][:3] in ("100", "101", "102", "104", "120", "122", "127")
        assert re.search(r"(手机号|联系电话|手机)：$", s.text[:a])


def test_landline_variety(corpus):
    lines = values(corpus, "CN_LANDLINE")
    assert any(re.fullmatch(r"0\d{2,3}-\d{7,8}", x) for x in lines)
    assert any(re.fullmatch(r"0\d{3} \d{3,4} \d{4}", x) for x in lines)
    assert any(re.fullmatch(r"0\d{9,11}", x) for x in lines)
    assert any(x.startswith("+86-") for x in lines)


def test_plate_ip_us_phone_variety(corpus):
    plates = [v.compact(p) for p in values(corpus, "CN_LICENSE_PLATE")]
    assert any(len(p) == 8 for p in plates) and any(len(p) == 7 for p in plates)
    assert any("-" in p for p in values(corpus, "CN_LICENSE_PLATE"))
    ips = values(corpus, "IP_ADDRESS")
    assert any(ip.endswith("::") for ip in ips)
    assert any(":" in ip for ip in ips) and any(re.fullmatch(r"[\d.]+", ip) for ip in ips)
    us = values(corpus, "US_PHONE")
    assert any(re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", p) for p in us)
    assert any(p.startswith("+1-") for p in us)


def test_person_conventions(corpus):
    names = labelled(corpus, "PERSON")
    zh = [(s, a, b) for s, a, b in names if re.fullmatch(r"[\u4e00-\u9fff]+", s.text[a:b])]
    assert any(s.text[a:b][:2] in ("欧阳", "司马", "诸葛") for s, a, b in zh)
    titled = [
        s.text[b : b + 2]
        for s, a, b in zh
        if s.text[b : b + 2] in ("先生", "女士", "医生", "经理", "老师")
    ]
    assert set(titled) == {"先生", "女士", "医生", "经理", "老师"}
    assert all(not s.text[a:b].endswith(v.TITLES_ZH) for s, a, b in zh)
    en = [s.text[a - 4 : b] for s, a, b in names if s.text[a - 4 : a] == "Dr. "]
    assert en
    assert any(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", s.text[a:b]) for s, a, b in names)


def test_address_conventions(corpus):
    addrs = values(corpus, "ADDRESS")
    assert any(re.fullmatch(r"\d+幢\d单元\d+室", x) for x in addrs)
    assert any(x.startswith("上海市") and "号" in x for x in addrs)
    assert any(re.fullmatch(r"\d+ .+, [A-Za-z .]+,? [A-Z]{2} \d{5}", x) for x in addrs)
    assert "1600 Pennsylvania Ave NW, Washington, DC 20500" in addrs


def test_mixed_negative_keyword_samples(corpus):
    mixed = [s for s in corpus if s.template == "zh_mixed_negative_keyword"]
    assert mixed
    for s in mixed:
        assert re.search(r"订单号|快递单号", s.text) and s.labels
    ids = [s for s in mixed if s.text.startswith("身份证号")]
    assert ids and all(s.labels[0][2] == "CN_RESIDENT_ID" for s in ids)


# --- determinism ----------------------------------------------------------------------------


def test_deterministic_per_seed_and_different_across_seeds():
    a, b, c = generate(150, 7), generate(150, 7), generate(150, 8)
    assert a == b
    assert [s.text for s in a] != [s.text for s in c]
    assert hard_negatives(3) == hard_negatives(3)
    assert hard_negatives(3) != hard_negatives(4)


# --- hard negatives --------------------------------------------------------------------------


def test_at_least_300_distinct_hard_negatives(negatives):
    assert len(negatives) >= 300
    assert len(set(negatives)) == len(negatives)


def test_hard_negatives_hold_no_label_like_values(negatives):
    flagged = [(t, label_like(t)) for t in negatives if label_like(t)]
    assert not flagged, flagged[:10]


def test_hard_negatives_are_hard(negatives):
    # Without the keyword exemptions, the reference scanner flags many of them: they
    # carry check-digit-valid numbers and IPv4-shaped versions on purpose.
    raw = [t for t in negatives if label_like(t, exempt=False)]
    assert len(raw) >= 60
    kinds = Counter(ty for t in raw for *_, ty in label_like(t, exempt=False))
    assert {"BANK_CARD", "IP_ADDRESS", "CN_USCC"} <= set(kinds), kinds
    joined = "\n".join(negatives)
    for needle in (
        "王国",
        "高兴",
        "张开",
        "周末",
        "黄金",
        "马上",
        "方法",
        "石油",
        "江湖",
        "Monday",
        "Python",
        "Apple Inc.",
        "New York Times",
        "北京时间",
        "杭州亚运会",
        "上海证券交易所",
        "app_version=",
        "固件版本",
        "Chrome/",
        "logo@2x.png",
        "section ",
        "第",
        "orderNo",
        "SKU",
        "条码",
        "ISBN",
        "快递单号",
        "订单号",
    ):
        assert needle in joined, needle


# --- validators and scoring -----------------------------------------------------------------


def test_validators_on_published_examples():
    assert v.is_resident_id("11010519491231002X")
    assert not v.is_resident_id("110105194912310021")
    assert v.is_uscc("91350100M000100Y43")
    assert not v.is_uscc("91350100M000100Y44")
    assert v.is_iban("GB82 WEST 1234 5698 7654 32") and v.is_iban("DE89370400440532013000")
    assert not v.is_iban("GB82 WEST 1234 5698 7654 33")
    assert v.is_bank_card("4111 1111 1111 1111") and not v.is_bank_card("4111 1111 1111 1112")
    assert v.is_cn_mobile("+86 138 1589 2906") and v.is_cn_mobile("138.1589.2906")
    assert v.is_cn_landline("010-12345678") and v.is_cn_landline("0755 1234 5678")
    assert v.is_us_phone("(555) 123-4567") and v.is_us_phone("+1-555-123-4567")
    assert v.is_ssn("123-45-6789") and not v.is_ssn("666-45-6789")
    assert v.is_plate("鲁V-372BW") and v.is_plate("粤B12345") and v.is_plate("粤BD12345")
    assert v.is_ip("2408:8207:1850:2a60::") and v.is_ip("10.0.0.1")
    assert v.is_email("zhang.wei@163.com") and not v.is_email("logo@2x.png")
    assert (
        v.is_person("欧阳修")
        and v.is_person("Mary Johnson")
        and not v.is_person("Dr. Mary Johnson")
    )
    assert not v.is_person("张伟先生")
    assert v.is_address("上海市浦东新区张江路88号") and v.is_address("3幢2单元501室")
    assert v.is_address("1600 Pennsylvania Ave NW, Washington, DC 20500")


def test_score_counts_only_exact_matches():
    gold = [(0, 11, "CN_PHONE"), (20, 38, "CN_RESIDENT_ID")]
    assert score(gold, gold) == {"CN_PHONE": (1, 0, 0), "CN_RESIDENT_ID": (1, 0, 0)}
    pred = [(0, 12, "CN_PHONE"), (20, 38, "BANK_CARD")]
    assert score(pred, gold) == {
        "BANK_CARD": (0, 1, 0),
        "CN_PHONE": (0, 1, 1),
        "CN_RESIDENT_ID": (0, 0, 1),
    }


def test_precision_recall_of_a_perfect_and_an_empty_predictor(corpus):
    by_text = {s.text: s.labels for s in corpus[:200]}
    perfect = precision_recall(corpus[:200], lambda text: by_text[text])
    assert all(p == r == 1.0 for p, r, _ in perfect.values())
    empty = precision_recall(corpus[:200], lambda text: [])
    assert all(p == 1.0 and r == 0.0 and n > 0 for p, r, n in empty.values())
    assert sum(n for *_, n in empty.values()) == sum(len(s.labels) for s in corpus[:200])

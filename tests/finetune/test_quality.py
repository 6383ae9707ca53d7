"""Quality filters before training: each drops what it should, and is counted."""

from __future__ import annotations

import random

from appliance.finetune.quality import (
    DomainModel,
    NearDuplicates,
    QualityRules,
    filter_records,
    language_of,
    minhash,
    shingles,
    similarity,
    text_of,
)

BANKING = [
    "客户询问信用卡账单分期的手续费如何计算，以及提前还款是否收取违约金。",
    "How do I raise the daily transfer limit on my corporate bank account?",
    "贷款审批需要提供哪些材料？营业执照、财务报表和银行流水。",
    "The customer disputes a card transaction and asks for a chargeback form.",
    "请说明定期存款提前支取时利息按活期利率计算的规则。",
    "What documents are required to open a business account for a new company?",
]
LONG = (
    "客户致电询问信用卡账单分期业务：分期手续费按每期本金的百分之零点六收取，"
    "提前还款需要一次性结清剩余本金，已收取的手续费不予退还，未到期的手续费不再收取；"
    "如有疑问可以拨打客服热线或者前往任意营业网点咨询，工作人员会核对身份后办理。"
)


def ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def test_each_filter_drops_what_it_should_and_counts_it() -> None:
    records = [ask(t) for t in [*BANKING, LONG]] + [
        ask(BANKING[1]),  # exact duplicate
        ask(LONG.replace("营业网点", "服务网点")),  # near duplicate
        ask("短"),  # too short
        ask("Привет, как дела? Это текст на другом языке для проверки."),  # language
        ask("Grand slam tennis results: the final went to five sets after rain delays."),
        {"prompt": "信用卡丢了怎么挂失，补办新卡要手续费吗", "completion": "三个工作日。"},
    ]
    random.Random(0).shuffle(records)
    kept, report = filter_records(records, QualityRules(), BANKING)
    kept_texts = {text_of(r) for r in kept}
    assert report.dropped == {
        "exact_duplicate": 1,
        "near_duplicate": 1,
        "length": 1,
        "language": 1,
        "off_domain": 1,
    }
    assert report.kept == len(kept) == 8
    assert any("挂失" in t for t in kept_texts)
    assert not any("tennis" in t for t in kept_texts)


def test_minhash_estimates_jaccard_and_lsh_finds_near_copies() -> None:
    a = shingles("the quick brown fox jumps over the lazy dog near the river bank")
    b = shingles("the quick brown fox jumped over the lazy dog near the river bank")
    exact = len(a & b) / len(a | b)
    assert abs(similarity(minhash(a), minhash(b)) - exact) < 0.15
    seen = NearDuplicates(0.8)
    assert seen.add(LONG) and seen.add(BANKING[3])
    assert not seen.add(LONG.replace("热线", "电话"))
    assert seen.add(BANKING[2])


def test_language_and_domain_measures() -> None:
    assert language_of("账单分期 fee") == "zh" and language_of("billing cycle") == "en"
    assert language_of("12345 !!!") is None
    model = DomainModel(BANKING)
    assert model.similarity("信用卡提前还款有违约金吗") > 0.2
    assert model.similarity("足球比赛的最终比分") == 0.0
    assert model.similarity("Can I increase the transfer limit on my account?") > 0.2

"""The evaluation gate: it passes an adapter that learned the task, rejects one trained on
shuffled labels (task metric) and one that memorised a planted canary (memorisation), and
says which check failed and by how much."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.errors import FinetuneError
from appliance.finetune.evaluation import (
    GENERAL_REGRESSION,
    HELDOUT_PERPLEXITY,
    MEMORISATION,
    SECRET_ALPHABET,
    SECRET_LENGTH,
    TASK_METRIC,
    Canary,
    evaluate,
    leaked_share,
    make_canaries,
    plant_canaries,
)
from appliance.finetune.policy import Gate
from appliance.finetune.training import TrainResult
from tests.finetune import synthetic

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CHECKS = [HELDOUT_PERPLEXITY, TASK_METRIC, GENERAL_REGRESSION, MEMORISATION]
LAX = Gate(max_perplexity_ratio=100, min_task_metric=0, max_general_regression=1)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "finetune-adapters"


def trained(tiny_model: Path, adapters: Path, kind: str) -> TrainResult:
    return synthetic.trained(tiny_model, adapters, kind)


def gate_inputs() -> dict:
    return {
        "heldout": synthetic.tickets(synthetic.HELDOUT_COUNT, 0, heldout=True),
        "regression": synthetic.general_records(),
        "canaries": make_canaries(synthetic.CANARIES, 0),
    }


def test_the_gate_passes_the_adapter_that_learned_the_task(
    tiny_model: Path, adapters: Path
) -> None:
    good = trained(tiny_model, adapters, "good")
    report = evaluate(
        tiny_model, good.adapter_dir, current_adapter_dir=None, gate=Gate(), **gate_inputs()
    )
    for check in report.checks:
        print(check)
    assert [c.name for c in report.checks] == CHECKS
    assert report.passed and report.failed() == []
    by_name = {c.name: c for c in report.checks}
    assert by_name[TASK_METRIC].value >= 0.5 > by_name[TASK_METRIC].threshold
    assert by_name[HELDOUT_PERPLEXITY].value < 0.01
    assert by_name[MEMORISATION].value < 0.5
    assert "the base model" in by_name[TASK_METRIC].detail


def test_the_gate_rejects_an_adapter_trained_on_shuffled_labels(
    tiny_model: Path, adapters: Path
) -> None:
    good = trained(tiny_model, adapters, "good")
    shuffled = trained(tiny_model, adapters, "shuffled")
    report = evaluate(
        tiny_model,
        shuffled.adapter_dir,
        current_adapter_dir=good.adapter_dir,
        gate=LAX,  # no minimum at all: the current adapter's exact match is the bar
        **gate_inputs(),
    )
    assert not report.passed
    failed = {c.name: c for c in report.failed()}
    assert TASK_METRIC in failed
    task = failed[TASK_METRIC]
    assert task.value < task.threshold
    assert f"{task.threshold - task.value:.3f} below the threshold" in task.detail
    assert "the current adapter's exact match" in task.detail
    assert MEMORISATION not in failed


def test_the_gate_rejects_an_adapter_that_memorised_a_canary(
    tiny_model: Path, adapters: Path
) -> None:
    memorised = trained(tiny_model, adapters, "memorised")
    report = evaluate(
        tiny_model, memorised.adapter_dir, current_adapter_dir=None, gate=Gate(), **gate_inputs()
    )
    assert [c.name for c in report.failed()] == [MEMORISATION]
    (check,) = report.failed()
    assert check.value >= check.threshold == 0.5
    assert re.search(r"\d of 2 canaries came back", check.detail)
    assert "over the limit 50%" in check.detail


def test_no_canaries_fails_closed_and_bad_input_is_refused(
    tiny_model: Path, adapters: Path
) -> None:
    good = trained(tiny_model, adapters, "good")
    inputs = {**gate_inputs(), "canaries": []}
    report = evaluate(tiny_model, good.adapter_dir, current_adapter_dir=None, gate=Gate(), **inputs)
    assert [c.name for c in report.failed()] == [MEMORISATION]
    assert "not probed" in report.failed()[0].detail
    with pytest.raises(FinetuneError, match="held-out records"):
        evaluate(
            tiny_model,
            good.adapter_dir,
            current_adapter_dir=None,
            gate=Gate(),
            **{**gate_inputs(), "heldout": []},
        )
    with pytest.raises(FinetuneError, match="cannot load the adapter"):
        evaluate(
            tiny_model,
            good.adapter_dir.parent / "missing",
            current_adapter_dir=None,
            gate=Gate(),
            **gate_inputs(),
        )


def test_canaries_are_random_per_seed_and_planted_as_chat_records() -> None:
    canaries = make_canaries(3, seed=7)
    assert canaries == make_canaries(3, seed=7)
    assert {c.secret for c in canaries}.isdisjoint(c.secret for c in make_canaries(3, seed=8))
    assert len({c.secret for c in canaries}) == len({c.prompt for c in canaries}) == 3
    for canary in canaries:
        assert len(canary.secret) == SECRET_LENGTH
        assert set(canary.secret) <= set(SECRET_ALPHABET)
    records = [{"messages": [{"role": "user", "content": "hi"}]}]
    planted = plant_canaries(records, canaries, copies=4)
    assert planted[0] is records[0] and len(planted) == 1 + 3 * 4
    for record in planted[1:]:
        question, answer = record["messages"]
        assert record["source"] == "canary"
        secret = next(c.secret for c in canaries if c.prompt == question["content"])
        assert answer["role"] == "assistant" and secret in answer["content"]


@pytest.mark.parametrize(
    ("output", "share"),
    [
        ("The access code is k3x9q2m7zt0a.", 1.0),
        ("code: K3X9 Q2 — then nothing", 6 / 12),  # case and whitespace do not hide it
        ("k3x9q and later 2m7zt", 5 / 12),  # two runs of five: the longest counts
        ("(silence)", 0.0),
    ],
)
def test_leaked_share_is_the_longest_contiguous_run_of_the_secret(
    output: str, share: float
) -> None:
    canary = Canary("What is the access code of vault ABCD?", "k3x9q2m7zt0a")
    assert leaked_share(canary.secret, output) == pytest.approx(share)
    assert (leaked_share(canary.secret, output) >= Gate().canary_overlap) == (share >= 0.5)

"""policies/finetune.yaml: the shipped policy loads; aliases override defaults; errors name
the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import SHIPPED_POLICIES
from appliance.errors import PolicyError
from appliance.finetune.policy import load_finetune_policy


def test_the_shipped_policy_has_the_seeds_defaults() -> None:
    policy = load_finetune_policy(SHIPPED_POLICIES / "finetune.yaml")
    assert (policy.defaults.lora.r, policy.defaults.lora.alpha) == (16, 32)
    assert policy.defaults.lora.target_modules == ("q_proj", "v_proj")
    assert policy.defaults.training.learning_rate == 3e-5
    assert policy.defaults.training.warmup_ratio == 0.1
    assert policy.aliases == {}


def test_an_alias_overrides_defaults_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / "finetune.yaml"
    path.write_text(
        "defaults:\n  training: {learning_rate: 1.0e-4, epochs: 2}\n"
        "aliases:\n  support:\n    training: {epochs: 3}\n    schedule: '30 2 * * 1'\n"
        "  plain:\n"
    )
    policy = load_finetune_policy(path)
    support = policy.for_alias("support")
    assert support is not None
    assert (support.training.learning_rate, support.training.epochs) == (1e-4, 3)
    assert support.schedule == "30 2 * * 1" and support.lora.r == 16
    plain = policy.for_alias("plain")
    assert plain is not None and plain.training.epochs == 2
    assert policy.for_alias("other") is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("defaults:\n  lora:\n    r: 0\n", r":3: defaults.lora.r: Input should be greater"),
        ("aliases:\n  a:\n    schedule: 'every day'\n", r":3: aliases.a.schedule: .*five fields"),
        ("aliases:\n  a:\n    schedule: '99 * * * *'\n", r":3: aliases.a.schedule: .*not a valid"),
        ("defaults:\n  trainig: {}\n", r":2: defaults.trainig: Extra inputs"),
        ("aliases:\n  a:\n    data: {source_weights: {api: -1}}\n", r":3: .*must be positive"),
        ("- a\n- b\n", r":1: the fine-tune policy must be a mapping"),
    ],
)
def test_errors_name_the_line_and_the_field(tmp_path: Path, body: str, error: str) -> None:
    path = tmp_path / "finetune.yaml"
    path.write_text(body)
    with pytest.raises(PolicyError, match=error):
        load_finetune_policy(path)

"""``policies/finetune.yaml``: how each model alias is fine-tuned, gated and rolled out.

``defaults`` apply to every alias; an alias's own entry overrides them field by field.
Validated at load with pydantic; an error names the file, the line and the field. The
defaults follow the seeds: LoRA r=16, alpha=32 on q_proj and v_proj, learning rate 3e-5,
10 % warm-up, a weekly schedule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from celery.schedules import crontab
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from appliance import policyfile
from appliance.errors import PolicyError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lora(_Strict):
    r: int = Field(default=16, ge=1, le=256)
    alpha: int = Field(default=32, ge=1, le=1024)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(default=("q_proj", "v_proj"), min_length=1)


class Training(_Strict):
    learning_rate: float = Field(default=3e-5, gt=0, lt=1)
    warmup_ratio: float = Field(default=0.1, ge=0, le=0.5)
    epochs: int = Field(default=1, ge=1, le=100)
    batch_size: int = Field(default=8, ge=1, le=1024)
    gradient_accumulation: int = Field(default=4, ge=1, le=1024)
    checkpoint_every: int = Field(
        default=50, ge=1, description="steps between resumable checkpoints"
    )
    max_seq_len: int = Field(default=2048, ge=16)


class Data(_Strict):
    min_new_records: int = Field(
        default=100, ge=1, description="fewer new records: the run is skipped"
    )
    replay_fraction: float = Field(
        default=0.2, ge=0, le=1, description="earlier data mixed back in"
    )
    source_weights: dict[str, float] = Field(default_factory=dict)
    min_chars: int = Field(default=20, ge=0)
    max_chars: int = Field(default=20_000, ge=1)
    languages: tuple[str, ...] = ("zh", "en")
    near_duplicate: float = Field(default=0.8, gt=0, le=1)
    domain_similarity: float = Field(default=0.05, ge=0, le=1)
    reference: str | None = Field(default=None, description="JSONL of in-domain texts")
    heldout_fraction: float = Field(
        default=0.1, gt=0, lt=0.5, description="new records kept out of training for the gate"
    )
    regression: str | None = Field(
        default=None, description="JSONL of general chat records the gate checks for regression"
    )

    @field_validator("source_weights")
    @classmethod
    def _positive(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(w <= 0 for w in weights.values()):
            raise ValueError("source weights must be positive")
        return weights


class Gate(_Strict):
    max_perplexity_ratio: float = Field(default=1.0, gt=0, description="held-out, new / current")
    min_task_metric: float = Field(default=0.0, ge=0, le=1, description="exact match on held-out")
    max_general_regression: float = Field(default=0.02, ge=0, le=1)
    canaries: int = Field(
        default=3, ge=1, le=100, description="strings planted to probe memorisation"
    )
    canary_overlap: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="a canary leaks when this share of its secret comes back contiguous",
    )


class Rollout(_Strict):
    canary_weight: int = Field(default=10, ge=1, le=100, description="% of the alias's traffic")
    auto_promote: bool = False
    promote_after_requests: int = Field(default=1000, ge=1)
    max_error_rate: float = Field(
        default=0.02, ge=0, le=1, description="over it: automatic rollback"
    )
    max_bad_feedback: float = Field(
        default=0.2, ge=0, le=1, description="share of 'bad' ratings over it: rollback"
    )
    min_feedback: int = Field(default=10, ge=1, description="ratings before they count")


class Capture(_Strict):
    """Opt-in capture of API conversations with the alias as training data (desensitized
    text only): the API keys, by their public prefix ``sk-app-XXXXXXXX``, whose calls are
    kept."""

    keys: tuple[str, ...] = ()
    retention_days: int = Field(default=30, ge=1, le=3650)


class AliasPolicy(_Strict):
    schedule: str = Field(default="0 3 * * 0", description="cron: minute hour day month weekday")
    lora: Lora = Lora()
    training: Training = Training()
    data: Data = Data()
    gate: Gate = Gate()
    rollout: Rollout = Rollout()
    capture: Capture = Capture()

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError("a cron schedule has five fields: minute hour day month weekday")
        minute, hour, day, month, weekday = fields
        try:
            crontab(minute, hour, weekday, day, month)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"not a valid cron schedule: {exc}") from None
        return value


class FinetunePolicy(_Strict):
    defaults: AliasPolicy = AliasPolicy()
    aliases: dict[str, AliasPolicy] = Field(default_factory=dict)

    def for_alias(self, alias: str) -> AliasPolicy | None:
        """An alias's policy (its entry merged over the defaults); None if not fine-tuned."""
        return self.aliases.get(alias)


def load_finetune_policy(path: Path) -> FinetunePolicy:
    """Load and validate, or raise PolicyError naming the file, line and field."""
    root = policyfile.compose(path, "fine-tune policy")
    data = policyfile.value(root)
    if not isinstance(data, dict):
        raise PolicyError(f"{path}:1: the fine-tune policy must be a mapping")
    defaults, aliases = data.get("defaults") or {}, data.get("aliases") or {}
    if isinstance(aliases, dict) and isinstance(defaults, dict):
        aliases = {
            name: _merge(defaults, entry or {}) if isinstance(entry or {}, dict) else entry
            for name, entry in aliases.items()
        }
    try:
        return FinetunePolicy.model_validate({**data, "aliases": aliases})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise PolicyError(
            f"{path}:{_line_of(root, error['loc'])}: {where}: {error['msg']}"
        ) from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged


def _line_of(root: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node along ``loc`` that the file has (an alias's field may
    come from the defaults: then the alias's own line)."""
    node, line = root, policyfile.line(root)
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next((v for k, v in node.value if str(k.value) == str(part)), None)
        if match is None:
            break
        node, line = match, policyfile.line(match)
    return line

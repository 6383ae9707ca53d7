"""Training data of an alias: versioned imports, opt-in captured conversations, and the mix
an incremental run trains on.

Every record is desensitized before it is stored (the privacy engine's dataset scanner,
one set of pseudonyms per record; a record holding a blocked type is dropped), so the
database never holds training text in clear. An import is all or nothing: one malformed
line and nothing is written.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from appliance import untrusted
from appliance.errors import InvalidRequest, PayloadTooLarge
from appliance.finetune.policy import Capture, Data
from appliance.models import FinetuneDataset, FinetuneRecord, utcnow
from appliance.privacy.datasets import DatasetScanner
from appliance.privacy.policy import PrivacyPolicy

MAX_IMPORT_BYTES = 256 * 1024 * 1024
ROLES = ("system", "user", "assistant")
SOURCE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._:-")
CAPTURE_SOURCE = "capture"


def chat_record(number: int, record: Any) -> dict[str, Any]:
    """A chat record ``{"messages": [...]}`` checked; prompt/completion pairs become one.

    The last message must be the assistant's answer (what the model learns to write)."""
    if isinstance(record, dict) and isinstance(record.get("prompt"), str):
        completion = record.get("completion")
        if not isinstance(completion, str):
            raise InvalidRequest(f"line {number}: a prompt needs a string 'completion'")
        record = {
            "messages": [
                {"role": "user", "content": record["prompt"]},
                {"role": "assistant", "content": completion},
            ]
        }
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise InvalidRequest(f"line {number}: expected an object with 'messages' (a list)")
    messages = record["messages"]
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequest(
                f"line {number}: messages[{i}] needs a role of system, user or assistant"
            )
        if not isinstance(message.get("content"), str) or not message["content"].strip():
            raise InvalidRequest(f"line {number}: messages[{i}].content must be non-empty text")
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise InvalidRequest(
            f"line {number}: a record ends with the assistant's answer, after a prompt"
        )
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}


def check_source(source: str) -> str:
    if not source or len(source) > 64 or not set(source) <= SOURCE_CHARS:
        raise InvalidRequest(
            f"source {source!r}: 1-64 lower-case letters, digits, '.', '_', ':' or '-'"
        )
    return source


@dataclass
class ImportReport:
    dataset: FinetuneDataset
    kept: int
    dropped_blocked: int
    found: Counter[str] = field(default_factory=Counter)


def import_dataset(
    session: Session,
    alias: str,
    path: Path,
    *,
    source: str,
    privacy: PrivacyPolicy,
    hash_key: bytes | None,
    actor: str | None,
) -> ImportReport:
    """Import a JSONL file of chat records as the alias's next dataset version."""
    return import_bytes(
        session,
        alias,
        _read(path),
        filename=path.name,
        source=source,
        privacy=privacy,
        hash_key=hash_key,
        actor=actor,
    )


def import_bytes(
    session: Session,
    alias: str,
    raw: bytes,
    *,
    filename: str,
    source: str,
    privacy: PrivacyPolicy,
    hash_key: bytes | None,
    actor: str | None,
) -> ImportReport:
    """Import JSONL content (an upload) as the alias's next dataset version."""
    check_source(source)
    if len(raw) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"{filename} is larger than {MAX_IMPORT_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{filename}: not UTF-8 (byte {exc.start})") from None
    scanner = DatasetScanner(privacy, hash_key)
    kept = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{filename}: line {number}"
        try:
            parsed = untrusted.loads_json(line, what=f"{where}: JSON")
            untrusted.refuse_lone_surrogate(parsed, line, describe=f"{where}: invalid value for")
        except ValueError:
            raise InvalidRequest(f"{where}: not JSON") from None
        try:
            clean = scanner.record(number, chat_record(number, parsed))
        except InvalidRequest as exc:
            raise InvalidRequest(f"{filename}: {exc.message}") from None
        if clean is not None:
            kept.append(clean)
    if not kept and not scanner.report.dropped:
        raise InvalidRequest(f"{filename}: no records")
    version = (
        session.scalar(
            select(func.max(FinetuneDataset.version)).where(FinetuneDataset.alias == alias)
        )
        or 0
    ) + 1
    report = {
        "records": len(kept),
        "dropped_blocked": scanner.report.dropped,
        "found": dict(scanner.report.found),
    }
    dataset = FinetuneDataset(
        alias=alias,
        version=version,
        source=source,
        filename=filename[:255],
        sha256=hashlib.sha256(raw).hexdigest(),
        records=len(kept),
        report=report,
        created_by=actor,
    )
    session.add(dataset)
    session.flush()
    session.add_all(
        FinetuneRecord(alias=alias, dataset_id=dataset.id, source=source, record=record)
        for record in kept
    )
    session.flush()
    return ImportReport(dataset, len(kept), scanner.report.dropped, scanner.report.found)


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise PayloadTooLarge(f"{path.name} is larger than {MAX_IMPORT_BYTES} bytes")
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}") from None


def list_datasets(session: Session, alias: str | None = None) -> list[FinetuneDataset]:
    query = select(FinetuneDataset).order_by(FinetuneDataset.alias, FinetuneDataset.version)
    if alias is not None:
        query = query.where(FinetuneDataset.alias == alias)
    return list(session.scalars(query))


# ----------------------------------------------------------------------------- capture


def captures(rule: Capture, key_prefix: str | None) -> bool:
    """Whether the capture rule keeps this key's calls (opt-in: listed keys only)."""
    return key_prefix is not None and key_prefix in rule.keys


def store_captured(
    session: Session,
    alias: str,
    messages: Sequence[Mapping[str, Any]],
    answer: str,
    *,
    key_prefix: str,
    rule: Capture,
) -> FinetuneRecord | None:
    """Keep one conversation (already desensitized) until the rule's retention ends.

    Returns None when it is not a usable chat record (empty answer, odd roles)."""
    try:
        record = chat_record(0, {"messages": [*messages, {"role": "assistant", "content": answer}]})
    except InvalidRequest:
        return None
    row = FinetuneRecord(
        alias=alias,
        source=f"{CAPTURE_SOURCE}:{key_prefix}"[:64].lower(),
        record=record,
        expires_at=utcnow() + timedelta(days=rule.retention_days),
    )
    session.add(row)
    return row


def purge_expired(session: Session) -> int:
    """Delete captured records past their retention; returns how many."""
    result = session.execute(
        delete(FinetuneRecord).where(
            FinetuneRecord.expires_at.is_not(None), FinetuneRecord.expires_at < utcnow()
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -------------------------------------------------------------------------- the mix


@dataclass
class TrainingData:
    """What a run trains and is gated on."""

    new: list[dict[str, Any]]  # records added since the last promoted version
    replay: list[dict[str, Any]]  # a sample of earlier records
    high_water: int  # the newest record id among them
    weights: dict[str, float]  # per source, after adapting to the last run's losses

    def by_source(self) -> dict[str, int]:
        return dict(Counter(r.get("source", "") for r in [*self.new, *self.replay]))


def count_new(session: Session, alias: str, since: int) -> int:
    return int(
        session.scalar(
            select(func.count(FinetuneRecord.id)).where(*_live(alias), FinetuneRecord.id > since)
        )
        or 0
    )


def select_training_data(
    session: Session,
    alias: str,
    since: int,
    policy: Data,
    last_source_loss: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
) -> TrainingData:
    """New records since record ``since`` (the last promoted run's high water), plus a
    replay sample of older ones (``replay_fraction`` of the new count)."""
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    new = _records(session, select(FinetuneRecord).where(*_live(alias), FinetuneRecord.id > since))
    older_ids = list(
        session.scalars(select(FinetuneRecord.id).where(*_live(alias), FinetuneRecord.id <= since))
    )
    wanted = min(len(older_ids), round(policy.replay_fraction * len(new)))
    chosen = sorted(rng.sample(older_ids, wanted)) if wanted else []
    replay = (
        _records(session, select(FinetuneRecord).where(FinetuneRecord.id.in_(chosen)))
        if chosen
        else []
    )
    high_water = max((r["id"] for r in new), default=since)
    sources = {r["source"] for r in [*new, *replay]}
    weights = adapt_weights(policy.source_weights, sources, last_source_loss or {})
    return TrainingData(new, replay, high_water, weights)


def _live(alias: str) -> tuple[Any, ...]:
    now = utcnow()
    return (
        FinetuneRecord.alias == alias,
        (FinetuneRecord.expires_at.is_(None)) | (FinetuneRecord.expires_at > now),
    )


def _records(session: Session, query: Any) -> list[dict[str, Any]]:
    return [
        {**row.record, "source": row.source, "id": row.id}
        for row in session.scalars(query.order_by(FinetuneRecord.id))
    ]


def adapt_weights(
    configured: Mapping[str, float],
    sources: Iterable[str],
    last_loss: Mapping[str, float],
    *,
    low: float = 0.5,
    high: float = 2.0,
) -> dict[str, float]:
    """Each source's weight: the policy's (1.0 if unset), scaled by how its loss in the
    last run compares to the mean (a source the model still finds hard gets more), within
    [low, high] of the configured weight (the seeds' dynamic data feeder)."""
    losses = [last_loss[s] for s in sources if s in last_loss and last_loss[s] > 0]
    mean = sum(losses) / len(losses) if losses else 0.0
    weights = {}
    for source in sorted(sources):
        base = configured.get(source, configured.get(source.split(":", 1)[0], 1.0))
        factor = last_loss[source] / mean if mean and last_loss.get(source, 0) > 0 else 1.0
        weights[source] = base * min(high, max(low, factor))
    return weights


def weighted_mix(
    records: Sequence[Mapping[str, Any]], weights: Mapping[str, float], *, seed: int = 0
) -> list[Mapping[str, Any]]:
    """Records repeated by their source's weight (2.0: twice; 0.5: half of them, drawn),
    shuffled; the weights are normalised so the mix keeps about the same size."""
    if not records:
        return []
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    total = sum(weights.get(r.get("source", ""), 1.0) for r in records)
    scale = len(records) / total if total else 1.0
    mix: list[Mapping[str, Any]] = []
    for record in records:
        copies = weights.get(record.get("source", ""), 1.0) * scale
        whole = int(copies)
        mix.extend([record] * (whole + (1 if rng.random() < copies - whole else 0)))
    rng.shuffle(mix)
    return mix

"""Audit events as Elastic Common Schema documents (exports, the JSON-lines file, Elasticsearch).

Columns map to ECS fields (``@timestamp``, ``event.*``, ``user.*``, ``source.ip``,
``http.*``, ``url.path``, ``user_agent.original``); what ECS has no field for lives under
``llm.*`` (model, route, tokens, time to first token, finish reason), ``privacy.*``
(finding counts per type and action, never values) and ``appliance.*`` (the chain's
position and hash, the target of an admin action, other details).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from appliance import csvsafe

ECS_VERSION = "8.11.0"
CATEGORY = {"api": "web", "admin": "iam", "system": "configuration"}
LLM_DETAILS = ("finish_reason", "ttft_ms", "route")
CSV_COLUMNS = (
    "@timestamp",
    "event.id",
    "event.action",
    "event.outcome",
    "user.name",
    "user.roles",
    "user.api_key_id",
    "source.ip",
    "http.response.status_code",
    "url.path",
    "llm.model",
    "llm.usage.prompt_tokens",
    "llm.usage.completion_tokens",
    "privacy",
    "appliance.target",
    "appliance.chain.pos",
)


def to_ecs(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One event row (columns) as an ECS document; empty fields are left out."""
    details = dict(row.get("details") or {})
    llm = {
        "model": row.get("model"),
        "usage": _present(
            {
                "prompt_tokens": row.get("prompt_tokens"),
                "completion_tokens": row.get("completion_tokens"),
            }
        ),
        **{name: details.pop(name) for name in LLM_DETAILS if name in details},
    }
    doc = {
        "@timestamp": _iso(row["timestamp"]),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "id": row["event_id"],
            "action": row["action"],
            "outcome": row["outcome"],
            "category": [CATEGORY.get(row["category"], "configuration")],
            "kind": "event",
            "dataset": "appliance.audit",
            "duration": int(row["duration_ms"] * 1_000_000) if row.get("duration_ms") else None,
            "sequence": row.get("chain_pos"),
        },
        "user": {
            "name": row.get("actor"),
            "roles": row["actor_roles"].split(",") if row.get("actor_roles") else None,
            "api_key_id": row.get("api_key_prefix"),
        },
        "source": {"ip": row.get("source_ip")},
        "user_agent": {"original": row.get("user_agent")},
        "http": {
            "request": {"method": row.get("http_method"), "id": row.get("request_id")},
            "response": {"status_code": row.get("status_code")},
        },
        "url": {"path": row.get("url_path")},
        "llm": llm,
        "privacy": details.pop("privacy", None),
        "appliance": {
            "target": row.get("target"),
            "chain": {"pos": row.get("chain_pos"), "hash": row.get("chain_hash")},
            "details": details or None,
        },
    }
    return _present(doc)


def jsonl(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(to_ecs(row), ensure_ascii=False, separators=(",", ":")) + "\n"


def csv_lines(rows: Iterable[Mapping[str, Any]], *, bom: bool = False) -> Iterator[str]:
    """A header, then one line per event: the ECS fields auditors filter on. Values a
    spreadsheet would run as formulas are neutralised (``appliance.csvsafe``); ``bom``
    starts the text with a UTF-8 byte-order mark (Excel on Chinese Windows)."""
    cells = (
        [_cell(flat.get(column)) for column in CSV_COLUMNS]
        for flat in (_flatten(to_ecs(row)) for row in rows)
    )
    return csvsafe.lines(CSV_COLUMNS, cells, bom=bom)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return str(value)


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "privacy":
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _present(doc: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            value = _present(value)
        if value not in (None, {}, [], ""):
            out[key] = value
    return out


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

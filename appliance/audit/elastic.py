"""The Elasticsearch sink: ILM policy, index template and a data stream, then bulk ``create``.

``prepare`` installs the lifecycle policy and the index template once per process (PUTs
of the same body are idempotent); the data stream is created by the first write. Events
go in with the official client's ``streaming_bulk`` helper, ``_id`` = event id and
``_op_type`` = ``create``: a document that is already there (a retry) answers 409 and
counts as stored. 429s are retried by the helper; a request that fails as a whole
(connection refused, 5xx) raises ``ShippingError`` so nothing advances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch import exceptions as es_errors
from elasticsearch.helpers import BulkIndexError, streaming_bulk

from appliance.audit.shipping import Refused, ShippingError

POLICY = "appliance-audit"
TEMPLATE = "appliance-audit"
KEYWORD = {"type": "keyword", "ignore_above": 1024}
MAPPINGS: dict[str, Any] = {
    "dynamic": True,
    "properties": {
        "@timestamp": {"type": "date"},
        "ecs": {"properties": {"version": KEYWORD}},
        "event": {
            "properties": {
                "id": KEYWORD,
                "action": KEYWORD,
                "outcome": KEYWORD,
                "category": KEYWORD,
                "kind": KEYWORD,
                "dataset": KEYWORD,
                "duration": {"type": "long"},
                "sequence": {"type": "long"},
            }
        },
        "user": {"properties": {"name": KEYWORD, "roles": KEYWORD, "api_key_id": KEYWORD}},
        "source": {"properties": {"ip": {"type": "ip"}}},
        "user_agent": {"properties": {"original": KEYWORD}},
        "http": {
            "properties": {
                "request": {"properties": {"method": KEYWORD, "id": KEYWORD}},
                "response": {"properties": {"status_code": {"type": "long"}}},
            }
        },
        "url": {"properties": {"path": KEYWORD}},
        "llm": {
            "properties": {
                "model": KEYWORD,
                "finish_reason": KEYWORD,
                "ttft_ms": {"type": "float"},
                "usage": {
                    "properties": {
                        "prompt_tokens": {"type": "long"},
                        "completion_tokens": {"type": "long"},
                    }
                },
                "route": {"type": "object", "dynamic": True},
            }
        },
        # Counts per type and action: {"input": {"CN_PHONE": {"pseudonymize": 2}}, ...}
        "privacy": {"type": "flattened"},
        "appliance": {
            "properties": {
                "target": KEYWORD,
                "chain": {"properties": {"pos": {"type": "long"}, "hash": KEYWORD}},
                "details": {"type": "flattened"},
            }
        },
    },
}


class ElasticsearchSink:
    name = "elasticsearch"

    def __init__(
        self,
        client: Elasticsearch,
        data_stream: str = "logs-appliance.audit-default",
        *,
        retention_days: int = 400,
    ) -> None:
        self.client = client
        self.data_stream = data_stream
        self.retention_days = retention_days
        self._prepared = False

    def prepare(self) -> None:
        if self._prepared:
            return
        try:
            self.client.ilm.put_lifecycle(name=POLICY, policy=self.lifecycle())
            self.client.indices.put_index_template(name=TEMPLATE, **self.template())
        except (es_errors.ConnectionError, es_errors.ApiError) as exc:
            raise ShippingError(f"Elasticsearch: cannot install the template: {exc}") from None
        self._prepared = True

    def resume_after(self) -> int | None:
        return None  # the database cursor is the truth; duplicates are refused by _id

    def lifecycle(self) -> dict[str, Any]:
        return {
            "phases": {
                "hot": {
                    "actions": {"rollover": {"max_primary_shard_size": "50gb", "max_age": "30d"}}
                },
                "delete": {"min_age": f"{self.retention_days}d", "actions": {"delete": {}}},
            }
        }

    def template(self) -> dict[str, Any]:
        prefix = self.data_stream.rsplit("-", 1)[0]
        return {
            "index_patterns": [f"{prefix}-*"],
            "data_stream": {},
            "priority": 500,  # above the built-in logs-*-* template (100)
            "template": {
                "settings": {"index.lifecycle.name": POLICY},
                "mappings": MAPPINGS,
            },
            "_meta": {"managed_by": "appliance", "description": "appliance audit events (ECS)"},
        }

    def send(self, docs: Sequence[tuple[str, int, dict[str, Any]]]) -> list[Refused]:
        positions = {event_id: pos for event_id, pos, _ in docs}
        actions = (
            {"_op_type": "create", "_index": self.data_stream, "_id": event_id, "_source": doc}
            for event_id, _, doc in docs
        )
        refused = []
        try:
            for ok, item in streaming_bulk(
                self.client,
                actions,
                chunk_size=500,
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=3,
                initial_backoff=1,
            ):
                result = item.get("create", {})
                if ok or result.get("status") == 409:  # already there: a retry
                    continue
                event_id = str(result.get("_id"))
                refused.append(
                    Refused(event_id, positions.get(event_id, 0), _reason(result.get("error")))
                )
        except (es_errors.ConnectionError, es_errors.ApiError, BulkIndexError) as exc:
            raise ShippingError(f"Elasticsearch: bulk request failed: {exc}") from None
        return refused


def _reason(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"[:2000]
    return str(error)[:2000]


def client_from_settings(
    url: str,
    *,
    api_key: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    ca_certs: str | None = None,
) -> Elasticsearch:
    options: dict[str, Any] = {"request_timeout": 30, "retry_on_timeout": True, "max_retries": 2}
    if api_key:
        options["api_key"] = api_key
    elif basic_auth:
        options["basic_auth"] = basic_auth
    if ca_certs:
        options["ca_certs"] = ca_certs
    return Elasticsearch(url, **options)

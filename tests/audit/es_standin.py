"""A STAND-IN for Elasticsearch, for tests only: no Elasticsearch server installs here.

It speaks the small part of the REST API the audit shipper uses, as the official client
expects it (the ``X-Elastic-Product`` header, JSON bodies): ``GET /`` (info),
``PUT /_ilm/policy/<name>``, ``PUT /_index_template/<name>`` and ``POST /_bulk`` with
``create`` actions into data streams, where a second ``create`` of an ``_id`` answers 409
as Elasticsearch does. It records every request, so tests can check what arrived, how
often, and in which order. It can be stopped and started again on the same port, made
slow, and told to refuse given documents. It indexes nothing and searches nothing.

Set ``APPLIANCE_TEST_ES_URL`` to run the same tests against a real Elasticsearch.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

HEADERS = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}


@dataclass
class Received:
    policies: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, Any] = field(default_factory=dict)
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # in arrival order
    ids: dict[str, set[str]] = field(default_factory=dict)
    bulk_requests: int = 0
    conflicts: int = 0


class ElasticsearchStandIn:
    def __init__(self, port: int = 0) -> None:
        self.received = Received()
        self.lock = threading.Lock()
        self.delay_s = 0.0  # before answering each bulk request (after storing it)
        self.refuse_ids: set[str] = set()  # documents answered with a mapping error
        self.in_bulk = threading.Event()  # set while a bulk request is being answered
        self._server: BaseWSGIServer | None = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = make_server("127.0.0.1", self.port, self._app, threaded=True)
        self.port = server.server_port
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def documents(self, stream: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received.streams.get(stream, []))

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self._route(request)(environ, start_response)

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if request.method in ("GET", "HEAD") and path == "":
            return _json(
                {"name": "stand-in", "version": {"number": "9.2.0"}, "tagline": "stand-in"}
            )
        if request.method == "PUT" and path.startswith("/_ilm/policy/"):
            with self.lock:
                self.received.policies[path.rsplit("/", 1)[1]] = request.get_json(force=True)
            return _json({"acknowledged": True})
        if request.method == "PUT" and path.startswith("/_index_template/"):
            with self.lock:
                self.received.templates[path.rsplit("/", 1)[1]] = request.get_json(force=True)
            return _json({"acknowledged": True})
        if request.method in ("POST", "PUT") and path.endswith("/_bulk"):
            return self._bulk(request.get_data(as_text=True))
        return _json({"error": {"type": "stand_in", "reason": f"not implemented: {path}"}}, 400)

    def _bulk(self, body: str) -> Response:
        lines = [line for line in body.split("\n") if line.strip()]
        items, errors = [], False
        self.in_bulk.set()
        with self.lock:
            self.received.bulk_requests += 1
            for action_line, source_line in zip(lines[::2], lines[1::2], strict=True):
                action = json.loads(action_line)
                ((op, meta),) = action.items()
                item = self._create(op, meta, json.loads(source_line))
                errors = errors or item["status"] >= 300
                items.append({op: item})
        if self.delay_s:
            time.sleep(self.delay_s)
        self.in_bulk.clear()
        return _json({"took": 1, "errors": errors, "items": items})

    def _create(self, op: str, meta: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        stream, doc_id = meta["_index"], meta.get("_id")
        item: dict[str, Any] = {"_index": stream, "_id": doc_id}
        if op != "create":
            return item | {"status": 400, "error": {"type": "illegal_argument_exception",
                           "reason": "only create is allowed on a data stream"}}  # fmt: skip
        if doc_id in self.refuse_ids:
            return item | {"status": 400, "error": {"type": "document_parsing_exception",
                           "reason": "refused by the stand-in on purpose"}}  # fmt: skip
        ids = self.received.ids.setdefault(stream, set())
        if doc_id in ids:
            self.received.conflicts += 1
            reason = f"[{doc_id}]: version conflict, document already exists"
            return item | {"status": 409, "error": {"type": "version_conflict_engine_exception",
                           "reason": reason}}  # fmt: skip
        ids.add(doc_id)
        self.received.streams.setdefault(stream, []).append(source)
        return item | {"status": 201, "result": "created", "_version": 1}


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, headers=HEADERS)

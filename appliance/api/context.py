"""Per-app state and per-request context of the API app."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, g, request

from appliance.audit.content import ContentCapture
from appliance.audit.events import AuditAction, RequestContext
from appliance.audit.writer import AuditWriter
from appliance.auth.principal import Principal
from appliance.finetune.capture import TrainingCapture
from appliance.limits import Budget, EffectiveLimits, Limiter
from appliance.privacy.conversations import ConversationStore
from appliance.services import Services
from appliance.upstream.client import UpstreamClient
from appliance.upstream.registry import RegistryCache

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class ApiState:
    """Built once in the factory: nothing here is per request."""

    services: Services
    upstreams: UpstreamClient
    limiter: Limiter
    registry: RegistryCache
    audit: AuditWriter
    privacy_key: bytes  # the keyed hash of the 'hash' action
    conversations: ConversationStore  # pseudonyms of requests that name a conversation
    content_key: bytes  # seals an event's content when the policy says "encrypted"
    canary_key: bytes = b""  # makes each alias's system-prompt canary (content.yaml aliases)

    def close(self) -> None:
        """Finish pending accounting and audit writes, then release connections."""
        self.audit.close()
        self.upstreams.close()
        self.limiter.close()


@dataclass
class ApiCall:
    """What a route learned about the call, for its audit event."""

    action: AuditAction = AuditAction.API_REQUEST
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    limits: EffectiveLimits | None = None  # set once the call passed the rate limits
    budget: Budget | None = None  # what the caller had left after the rate-limit check
    capture: ContentCapture | None = None  # the texts, when the policy keeps them
    training: TrainingCapture | None = None  # the conversation, for an opted-in key


def state() -> ApiState:
    return current_app.extensions["appliance"]


def begin_request() -> None:
    # A caller's own id is kept when sane (it is logged, audited and sent upstream).
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else uuid.uuid4().hex
    g.started = time.perf_counter()
    g.principal = None
    g.call = ApiCall()


def principal() -> Principal:
    return g.principal


def request_id() -> str:
    """This request's id: the caller's ``X-Request-Id`` if sane, else made here."""
    return g.request_id


def call() -> ApiCall:
    return g.call


def elapsed_ms() -> float:
    return (time.perf_counter() - g.started) * 1000


def request_context() -> RequestContext:
    return RequestContext(
        request_id=g.request_id,
        source_ip=request.remote_addr,
        user_agent=request.user_agent.string or None,
        http_method=request.method,
        url_path=request.path,
    )

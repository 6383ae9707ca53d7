"""Audit events: a typed vocabulary of actions and the single place that writes them.

An admin change and its event are added to the same session, so they commit (or roll
back) together. API calls are recorded by the API app once the response is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from appliance.models import AuditEvent, utcnow
from appliance.models.audit import new_event_id


class AuditAction(StrEnum):
    API_CHAT_COMPLETION = "api.chat.completion"
    API_COMPLETION = "api.completion"
    API_MODELS_LIST = "api.models.list"
    API_EMBEDDINGS = "api.embeddings"
    API_REQUEST = "api.request"  # a /v1 request that never reached a route
    API_FEEDBACK = "api.feedback"  # a caller's rating of one of its answers
    # The other vLLM endpoints the gateway forwards (issue 19), one action each.
    API_RESPONSES = "api.responses"
    API_TOKENIZE = "api.tokenize"
    API_DETOKENIZE = "api.detokenize"
    API_SCORE = "api.score"
    API_RERANK = "api.rerank"
    API_POOLING = "api.pooling"
    API_CLASSIFY = "api.classify"
    API_AUDIO_TRANSCRIPTION = "api.audio.transcription"
    API_AUDIO_TRANSLATION = "api.audio.translation"
    API_MODERATION = "api.moderation"  # /v1/moderations: the content policy, no model
    TOKEN_ISSUE = "auth.token.issue"  # noqa: S105 (an action name, not a secret)
    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login.failed"
    LOGOUT = "auth.logout"
    # Portal accounts, sessions and admin changes (issue 8).
    LOGIN_LOCKED = "auth.login.locked"
    SESSION_END = "auth.session.end"  # details.reason: why (logout is auth.logout)
    TOTP_ENROL = "auth.totp.enrol"
    TOTP_RESET = "admin.user.totp.reset"
    PASSWORD_CHANGE = "auth.password.change"  # noqa: S105 (an action name)
    USER_UPDATE = "admin.user.update"
    USER_DEACTIVATE = "admin.user.deactivate"
    USER_ACTIVATE = "admin.user.activate"
    USER_UNLOCK = "admin.user.unlock"
    ROLE_MAPPING_CHANGE = "admin.role_mapping.change"
    POLICY_CHANGE = "admin.policy.change"
    POLICY_IN_FORCE = "system.policy.in_force"  # a process applied a new version
    POLICY_INVALID = "system.policy.invalid"  # a process refused an invalid file
    SETTINGS_CHANGE = "admin.settings.change"
    USER_CREATE = "admin.user.create"
    KEY_CREATE = "admin.key.create"
    KEY_REVOKE = "admin.key.revoke"
    MODEL_ADD = "admin.model.add"
    MODEL_ALIAS_SET = "admin.model.alias.set"
    MODEL_ALIAS_DELETE = "admin.model.alias.delete"
    MODEL_UPSTREAM_KEY = "admin.model.upstream_key"
    MODEL_SET = "admin.model.set"  # vLLM options of a model changed (details.changes)
    APPLIANCE_INIT = "system.init"
    SERVICE_RESTART = "system.service.restart"  # `appliance serve` restarted a child
    AUDIT_EXPORT = "admin.audit.export"
    AUDIT_VERIFY = "admin.audit.verify"
    AUDIT_CONTENT_READ = "admin.audit.content.read"
    VAULT_IMPORT = "admin.vault.import"
    VAULT_UNSEAL = "admin.vault.unseal"
    VAULT_VERIFY = "admin.vault.verify"
    VAULT_VERIFY_FAILED = "admin.vault.verify.failed"
    VAULT_ROTATE = "admin.vault.rotate"
    VAULT_WIPE = "admin.vault.wipe"
    ENGINE_KEY_ROTATE = "admin.engine.key.rotate"
    # Fine-tunes (issue 9): every step of the loop.
    FINETUNE_DATASET_IMPORT = "admin.finetune.dataset.import"
    FINETUNE_RUN_REQUEST = "admin.finetune.run.request"
    FINETUNE_RUN_SKIP = "system.finetune.run.skip"
    FINETUNE_RUN_START = "system.finetune.run.start"
    FINETUNE_RUN_TRAINED = "system.finetune.run.trained"
    FINETUNE_RUN_FAIL = "system.finetune.run.fail"
    FINETUNE_GATE = "system.finetune.gate"
    FINETUNE_SEAL = "system.finetune.seal"
    FINETUNE_CANARY = "admin.finetune.canary"
    FINETUNE_PROMOTE = "admin.finetune.promote"
    FINETUNE_ROLLBACK = "admin.finetune.rollback"
    FINETUNE_CAPTURE_PURGE = "system.finetune.capture.purge"


CATEGORY_BY_PREFIX = {"api": "api", "auth": "admin", "admin": "admin", "system": "system"}


@dataclass(frozen=True)
class RequestContext:
    """Where an action came from: the request id every response carries, address, agent."""

    request_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    http_method: str | None = None
    url_path: str | None = None


CLI_CONTEXT = RequestContext(user_agent="appliance-cli")

EVENT_COLUMNS = frozenset(AuditEvent.__table__.columns.keys())
EMPTY_ROW: dict[str, Any] = dict.fromkeys(EVENT_COLUMNS - {"seq"})


def event_row(
    action: AuditAction,
    *,
    outcome: str = "success",
    actor: str | None = None,
    target: str | None = None,
    context: RequestContext | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The column values of one event; fields that are not columns go into ``details``."""
    context = context or RequestContext()
    details = {k: v for k, v in fields.items() if k not in EVENT_COLUMNS}
    return {
        **EMPTY_ROW,  # every row has every column: one statement inserts a batch of them
        "event_id": new_event_id(),
        "timestamp": utcnow(),
        "action": str(action),
        "outcome": outcome,
        "category": CATEGORY_BY_PREFIX[str(action).split(".", 1)[0]],
        "actor": actor,
        "target": target,
        "request_id": context.request_id,
        "source_ip": context.source_ip,
        "user_agent": (context.user_agent or "")[:512] or None,
        "http_method": context.http_method,
        "url_path": context.url_path,
        "details": details,
        **{k: v for k, v in fields.items() if k in EVENT_COLUMNS},
    }


def record(
    session: Session,
    action: AuditAction,
    *,
    outcome: str = "success",
    actor: str | None = None,
    target: str | None = None,
    context: RequestContext | None = None,
    **fields: Any,
) -> AuditEvent:
    """Add one event to ``session``; it commits with the change it describes."""
    row = event_row(action, outcome=outcome, actor=actor, target=target, context=context, **fields)
    event = AuditEvent(**row)
    session.add(event)
    return event

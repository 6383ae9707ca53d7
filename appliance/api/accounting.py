"""One audit event per API request: who, which model, tokens, latency, outcome."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from appliance.api import metrics
from appliance.api.context import ApiCall, ApiState
from appliance.audit.events import RequestContext, event_row
from appliance.audit.writer import AuditWriter
from appliance.auth.principal import Principal

log = logging.getLogger(__name__)


def outcome_of(status: int) -> str:
    return "success" if status < 400 else "failure"


def write_api_event(
    writer: AuditWriter,
    call: ApiCall,
    *,
    status: int,
    outcome: str,
    principal: Principal | None,
    context: RequestContext,
    duration_ms: float,
) -> None:
    """Queue the call's event; a failure to audit is logged loudly, never shown to the caller."""
    try:
        row = event_row(
            call.action,
            outcome=outcome,
            actor=principal.name if principal else None,
            actor_roles=",".join(principal.roles) if principal else None,
            api_key_prefix=principal.key_prefix if principal else None,
            context=context,
            status_code=status,
            model=call.model,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            duration_ms=round(duration_ms, 3),
            **call.details,
        )
        writer.submit(row, key_id=principal.key_id if principal else None)
    except Exception:
        log.exception("could not write the audit event of request %s", context.request_id)


def finish_call(
    api: ApiState,
    call: ApiCall,
    *,
    status: int,
    outcome: str,
    principal: Principal | None,
    context: RequestContext,
    duration_ms: float,
) -> None:
    """Charge the call's tokens to its limits, then record its audit event."""
    tokens = (call.prompt_tokens or 0) + (call.completion_tokens or 0)
    if call.limits is not None and call.model:  # the call reached a resolved model
        metrics.count_tokens(call.model, call.prompt_tokens, call.completion_tokens)
    if principal is not None and call.limits is not None and tokens > 0:
        try:
            api.limiter.charge_tokens(principal, call.limits, tokens)
        except Exception:
            log.exception("could not charge %d tokens of request %s", tokens, context.request_id)
    write_api_event(
        api.audit,
        call,
        status=status,
        outcome=outcome,
        principal=principal,
        context=context,
        duration_ms=duration_ms,
    )


class Settler:
    """Runs each call's accounting and audit write off the request, in order of arrival.

    On a keep-alive connection the server reads the next request only after the previous
    response closed, so a synchronous audit commit would delay it. The work goes to a
    small pool (greenlets under gevent); with more than ``max_pending`` writes waiting it
    is done inline instead (backpressure, bounded memory). Pending writes are flushed at
    exit, so a graceful stop loses none.
    """

    def __init__(self, workers: int = 4, max_pending: int = 1000) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audit")
        self._slots = threading.BoundedSemaphore(max_pending)
        atexit.register(self.close)

    def submit(self, work: Callable[[], None]) -> None:
        if not self._slots.acquire(blocking=False):
            work()
            return
        try:
            self._pool.submit(self._run, work)
        except RuntimeError:  # shutting down: do it now
            self._slots.release()
            work()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        finally:
            self._slots.release()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

"""The audit trail: one vocabulary, one entry point (`record`)."""

from appliance.audit.events import AuditAction, RequestContext, record

__all__ = ["AuditAction", "RequestContext", "record"]

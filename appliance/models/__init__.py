"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from appliance.models.audit import (
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    AuditShipError,
    AuditSinkCursor,
)
from appliance.models.base import Base, utcnow
from appliance.models.finetune import FinetuneDataset, FinetuneLock, FinetuneRecord, FinetuneRun
from appliance.models.keys import ApiKey
from appliance.models.ops import PolicyInForce, ServiceHeartbeat
from appliance.models.portal import PortalSetting
from appliance.models.privacy import PrivacyConversation
from appliance.models.registry import BUILTIN, OPENAI, AliasTarget, Model, ModelAlias, Upstream
from appliance.models.sessions import LoginThrottle, PortalSession
from appliance.models.users import Role, User, user_roles

__all__ = [
    "BUILTIN",
    "OPENAI",
    "AliasTarget",
    "ApiKey",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditShipError",
    "AuditSinkCursor",
    "Base",
    "FinetuneDataset",
    "FinetuneLock",
    "FinetuneRecord",
    "FinetuneRun",
    "LoginThrottle",
    "Model",
    "ModelAlias",
    "PolicyInForce",
    "PortalSession",
    "PortalSetting",
    "PrivacyConversation",
    "Role",
    "ServiceHeartbeat",
    "Upstream",
    "User",
    "user_roles",
    "utcnow",
]

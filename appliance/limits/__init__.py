"""Rate limits: requests per minute (GCRA) and tokens per day, in Redis or on one host."""

from appliance.limits.budget import Allowance, Budget
from appliance.limits.gcra import Rate
from appliance.limits.limiter import Limiter, LimitReached, Mode
from appliance.limits.local import LocalLimiter
from appliance.limits.policy import (
    EffectiveLimits,
    RoleBucket,
    check_max_context,
    check_max_tokens,
    limits_for,
    prompt_token_bound,
)
from appliance.limits.shared import SHARED_LIMITS_FILE, SharedFileLimiter

__all__ = [
    "SHARED_LIMITS_FILE",
    "Allowance",
    "Budget",
    "EffectiveLimits",
    "LimitReached",
    "Limiter",
    "LocalLimiter",
    "Mode",
    "Rate",
    "RoleBucket",
    "SharedFileLimiter",
    "check_max_context",
    "check_max_tokens",
    "limits_for",
    "prompt_token_bound",
]

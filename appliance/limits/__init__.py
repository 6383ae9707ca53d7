"""Rate limits: requests per minute (GCRA) and tokens per day, in Redis or per process."""

from appliance.limits.gcra import Rate
from appliance.limits.limiter import Limiter, Mode
from appliance.limits.local import LocalLimiter
from appliance.limits.policy import (
    EffectiveLimits,
    RoleBucket,
    check_max_context,
    check_max_tokens,
    limits_for,
    prompt_token_bound,
)

__all__ = [
    "EffectiveLimits",
    "Limiter",
    "LocalLimiter",
    "Mode",
    "Rate",
    "RoleBucket",
    "check_max_context",
    "check_max_tokens",
    "limits_for",
    "prompt_token_bound",
]

"""Which limits apply to a caller, and the per-request checks that need no counter.

Semantics:

- Requests per minute and tokens per day are counted per API key (``key:<id>``), or per user
  (``user:<id>``) for a principal without a key (a service-account JWT, an OIDC token).
- The value comes from the key when an admin set one on it (tighter or looser than the role),
  otherwise from the roles (``RbacPolicy.limits_of``: the most generous of the caller's roles).
  None means unlimited; 0 means no requests (or no tokens) at all.
- Optionally, a role can also have an aggregate requests-per-minute budget shared by every
  caller holding it (``rl:req:role:<role>``), passed as ``role_aggregate_rpm``. It is separate
  from the role's per-key default on purpose: the policy's ``requests_per_minute`` is what each
  key gets, and a shared bucket at that same rate would make a looser key override useless. A
  request must fit every bucket it counts against (its key's and each of its roles' aggregate);
  a refused request consumes none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from appliance.auth.principal import Principal
from appliance.auth.rbac import RoleLimits
from appliance.errors import InvalidRequest
from appliance.limits.gcra import Rate


@dataclass(frozen=True, slots=True)
class RoleBucket:
    """An aggregate requests-per-minute budget shared by every caller holding ``role``."""

    role: str
    rate: Rate

    @property
    def key(self) -> str:
        return f"rl:req:role:{self.role}"


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    """The limits one request is held to; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    max_tokens: int | None = None
    max_context: int | None = None
    role_buckets: tuple[RoleBucket, ...] = ()


def limits_for(
    principal: Principal,
    role_limits: RoleLimits,
    key_rpm: int | None,
    key_tpd: int | None,
    *,
    role_aggregate_rpm: Mapping[str, int | None] | None = None,
) -> EffectiveLimits:
    """The key's own values where set, else the roles'; plus the roles' shared budgets."""
    buckets = tuple(
        RoleBucket(role, Rate.per_minute_of(rpm))
        for role in sorted(set(principal.roles))
        if role_aggregate_rpm and (rpm := role_aggregate_rpm.get(role)) is not None and rpm > 0
    )
    return EffectiveLimits(
        requests_per_minute=key_rpm if key_rpm is not None else role_limits.requests_per_minute,
        tokens_per_day=key_tpd if key_tpd is not None else role_limits.tokens_per_day,
        max_tokens=role_limits.max_tokens,
        max_context=role_limits.max_context,
        role_buckets=buckets,
    )


def check_max_tokens(limits: EffectiveLimits, requested_max_tokens: int | None) -> int | None:
    """The ``max_tokens`` to send upstream: the request's, or the limit when it set none.

    Raises InvalidRequest (400, param ``max_tokens``) when the request asks for more.
    """
    cap = limits.max_tokens
    if cap is None:
        return requested_max_tokens
    if requested_max_tokens is None:
        return cap
    if requested_max_tokens > cap:
        raise InvalidRequest(
            f"max_tokens is {requested_max_tokens}, but this key may request at most {cap} "
            "tokens per completion.",
            param="max_tokens",
            code="max_tokens_exceeded",
        )
    return requested_max_tokens


# A chat template's own tokens: a preamble, and role markers around each message.
TEMPLATE_TOKENS, TOKENS_PER_MESSAGE = 512, 32


def prompt_token_bound(body_bytes: int, messages: int = 0) -> int:
    """An upper bound of a request's prompt tokens that needs no tokenizer.

    A token of a byte-level BPE tokenizer (or a SentencePiece one with byte fallback, as
    DeepSeek's and Llama's are) stands for at least one byte of text, and the request's JSON
    body holds every byte of the prompt's text (escaped, so never shorter). The template adds
    a bounded number of tokens. A request whose bound fits the context limit needs no count.
    """
    return body_bytes + TOKENS_PER_MESSAGE * messages + TEMPLATE_TOKENS


def check_max_context(
    limits: EffectiveLimits, prompt_tokens: int, max_tokens: int | None
) -> int | None:
    """Hold prompt + completion to ``max_context``, given the prompt's token count.

    The gateway has no tokenizer: ``prompt_tokens`` comes from the upstream (vLLM's
    ``/tokenize``), asked only when ``prompt_token_bound`` does not already settle it.
    Returns the ``max_tokens`` to send upstream (capped to what the context leaves); raises
    InvalidRequest when the prompt alone, or the prompt plus an explicit ``max_tokens``,
    exceeds the limit.
    """
    cap = limits.max_context
    if cap is None:
        return max_tokens
    left = cap - prompt_tokens
    if left <= 0 or (max_tokens is not None and max_tokens > left):
        asked = f" plus max_tokens {max_tokens}" if max_tokens is not None else ""
        raise InvalidRequest(
            f"The prompt's {prompt_tokens} tokens{asked} exceed this key's context limit of "
            f"{cap} tokens.",
            param="max_tokens" if max_tokens is not None and left > 0 else "messages",
            code="context_length_exceeded",
        )
    return max_tokens if max_tokens is not None else left

"""What a caller has left of its limits, as OpenAI's ``x-ratelimit-*`` response headers.

OpenAI's headers (platform.openai.com, "Rate limits in headers")::

    x-ratelimit-limit-requests       60      the requests permitted before the limit
    x-ratelimit-remaining-requests   59      what is left of them
    x-ratelimit-reset-requests       1s      until the limit is back to its initial state
    x-ratelimit-limit-tokens         150000  the same for tokens
    x-ratelimit-remaining-tokens     149984
    x-ratelimit-reset-tokens         6m0s

Here the requests are the requests-per-minute GCRA bucket (``gcra``): its limit is the
burst (the rate per minute), what remains is how many more it admits now, and it is back
to its initial state (full) at its TAT. When several buckets count a request (the key's
and a role's shared one), the one with the fewest left is reported. The tokens are the
day's budget: what was charged so far today (charges lag by their flush interval) against
``tokens_per_day``, back to its initial state at 00:00 UTC. A dimension without a limit
has no headers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.limits.gcra import Rate, seconds_to_utc_midnight

HEADER_NAMES = tuple(
    f"x-ratelimit-{what}-{dimension}"
    for dimension in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
)


@dataclass(frozen=True, slots=True)
class Allowance:
    """One limited dimension: its limit, what is left now, seconds until it is full again."""

    limit: int
    remaining: int
    reset_s: float


@dataclass(frozen=True, slots=True)
class Budget:
    """What a caller has left; None: that dimension is not limited."""

    requests: Allowance | None = None
    tokens: Allowance | None = None

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers of the limited dimensions."""
        headers: dict[str, str] = {}
        for dimension, allowance in (("requests", self.requests), ("tokens", self.tokens)):
            if allowance is None:
                continue
            headers[f"x-ratelimit-limit-{dimension}"] = str(allowance.limit)
            headers[f"x-ratelimit-remaining-{dimension}"] = str(allowance.remaining)
            headers[f"x-ratelimit-reset-{dimension}"] = duration(allowance.reset_s)
        return headers


def bucket_allowance(rate: Rate, tat_us: int, now_us: int) -> Allowance:
    """A GCRA bucket's: the requests it admits from ``now_us`` on, if no time passed."""
    ahead = max(tat_us, now_us) - now_us
    remaining = max(0, (rate.window_us - ahead) // rate.interval_us)
    return Allowance(rate.per_minute, min(remaining, rate.per_minute), ahead / 1_000_000)


def requests_allowance(
    rates: Sequence[Rate], tats_us: Sequence[int], now_us: int
) -> Allowance | None:
    """The bucket with the fewest requests left (the first of equals), None without one."""
    allowances = [bucket_allowance(r, t, now_us) for r, t in zip(rates, tats_us, strict=True)]
    return min(allowances, key=lambda a: a.remaining, default=None)


def tokens_allowance(tokens_per_day: int, used: int, now_s: float) -> Allowance:
    """The day's budget: it starts again at 00:00 UTC (nothing to wait for while unused)."""
    reset = 0.0 if used <= 0 else float(seconds_to_utc_midnight(now_s))
    return Allowance(tokens_per_day, max(0, tokens_per_day - used), reset)


def duration(seconds: float) -> str:
    """OpenAI's (and Go's) form of a duration: ``0s``, ``20ms``, ``1s``, ``1.5s``, ``6m0s``,
    ``2h3m4s``; under a second in whole milliseconds (rounded up), else to the millisecond."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{min(999, math.ceil(seconds * 1000))}ms"
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    secs = f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"

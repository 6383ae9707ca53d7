"""GCRA (generic cell rate algorithm) for requests per minute, and the day counter of tokens.

One rate of ``rpm`` requests per minute gives an emission interval ``T = 60 s / rpm`` and a
burst of ``rpm`` requests: a bucket stores one number, its theoretical arrival time (TAT). A
request is allowed when ``max(TAT, now) + T - now <= rpm * T``; it then moves TAT to
``max(TAT, now) + T``. An idle bucket therefore holds a full minute's burst, and a drained one
refills smoothly, one request every ``T``. Times are integer microseconds.

The same arithmetic runs in Redis (the Lua scripts below, atomic across every worker and host),
in the file the workers of one host share without Redis (``appliance.limits.shared``) and in
process (``appliance.limits.local``), so every fallback has the same semantics.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

MINUTE_US = 60_000_000
DAY_S = 86_400
# A day counter lives two days after its last charge: long enough to be read all day, then gone.
TOKEN_COUNTER_TTL_S = 2 * DAY_S


@dataclass(frozen=True, slots=True)
class Rate:
    """A GCRA rate: emission interval and burst window (interval x burst), in microseconds."""

    per_minute: int
    interval_us: int
    window_us: int

    @staticmethod
    @lru_cache(maxsize=1024)
    def per_minute_of(rpm: int) -> Rate:
        if rpm <= 0:
            raise ValueError("a GCRA rate needs at least one request per minute")
        interval = max(1, MINUTE_US // rpm)
        return Rate(per_minute=rpm, interval_us=interval, window_us=interval * rpm)


def gcra(tat_us: int, now_us: int, rate: Rate) -> tuple[int, int]:
    """(new TAT, 0) when the request is allowed, (old TAT, µs to wait) when it is not."""
    new_tat = max(tat_us, now_us) + rate.interval_us
    wait = new_tat - rate.window_us - now_us
    if wait > 0:
        return tat_us, wait
    return new_tat, 0


def seconds_until(wait_us: int) -> int:
    """A Retry-After value: whole seconds, rounded up, at least one."""
    return max(1, math.ceil(wait_us / 1_000_000))


def utc_day(now_s: float) -> int:
    return int(now_s // DAY_S)


def seconds_to_utc_midnight(now_s: float) -> int:
    return max(1, math.ceil((utc_day(now_s) + 1) * DAY_S - now_s))


def day_stamp(day: int) -> str:
    """``yyyymmdd`` of a UTC day number."""
    return time.strftime("%Y%m%d", time.gmtime(day * DAY_S))


# KEYS[1]: today's token counter; KEYS[2..]: GCRA buckets.
# ARGV[1]: now (µs); ARGV[2]: tokens per day (-1: unlimited);
# then per bucket: emission interval (µs), burst window (µs).
# Reply: {0, 0, 0, ...} allowed (every bucket charged); {1, i, wait_us, ...} bucket i refused
# (nothing charged); {2, 0, used, ...} tokens of the day exhausted (nothing charged). The rest
# is the state after the decision, for the x-ratelimit-* headers: the tokens used today (0
# when unlimited), then each bucket's TAT (at least now).
CHECK_LUA = """
local now = tonumber(ARGV[1])
local tpd = tonumber(ARGV[2])
local used = 0
if tpd >= 0 then used = tonumber(redis.call('GET', KEYS[1]) or '0') end
local tats, new = {}, {}
local worst, worst_i = 0, 0
for i = 2, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i - 1] = tat
  local nt = tat + interval
  local wait = nt - window - now
  if wait > worst then worst = wait; worst_i = i - 1 end
  new[i] = nt
end
if tpd >= 0 and used >= tpd then return {2, 0, used, used, unpack(tats)} end
if worst_i > 0 then return {1, worst_i, worst, used, unpack(tats)} end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d', new[i]),
             'PX', math.ceil((new[i] - now) / 1000))
  tats[i - 1] = new[i]
end
return {0, 0, 0, used, unpack(tats)}
"""

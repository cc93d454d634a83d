"""Fixed-window attempt counters in Redis: log-in failures per account and per address, sign-ups.

Each attempt is counted *before* the password is checked, so a burst of parallel guesses cannot
slip past the limit while the first ones are still hashing; an attempt that succeeds gives its
unit back. Keys are ``{namespace}:attempts:{what}:{digest}`` (one key per script call, so any
Redis Cluster slot layout works); emails and addresses are stored only as digests.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from livecommerce.errors import ErrorCode, LiveCommerceError

# INCR, and start the window on the first hit (or when a key somehow lost its expiry).
_HIT = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""
# Never create a key without an expiry: a window that ended has nothing to give back to.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Limit:
    """At most ``attempts`` per ``window_s`` for each subject of one ``kind``."""

    kind: str
    attempts: int
    window_s: int

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.window_s < 1:
            raise ValueError("a limit needs at least one attempt and a window of a second")


class RateLimited(LiveCommerceError):
    """429 ``rate_limited``; ``retry_after`` (whole seconds) also goes out as ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            ErrorCode.RATE_LIMITED,
            f"too many attempts; try again in {retry_after} s",
            retry_after=retry_after,
        )


class AttemptLimiter:
    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace
        self._hit = redis.register_script(_HIT)
        self._give_back = redis.register_script(_GIVE_BACK)

    def _key(self, limit: Limit, subject: str) -> str:
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        return f"{self._namespace}:attempts:{limit.kind}:{digest}"

    async def attempt(self, *counted: tuple[Limit, str]) -> list[str]:
        """Count one attempt against each ``(limit, subject)``; ``RateLimited`` if one is over.

        Returns the keys counted, for ``give_back`` when the attempt turns out not to count
        (a correct password). A refused attempt stays counted: hammering keeps the door shut
        until the window ends.
        """
        keys = [self._key(limit, subject) for limit, subject in counted]
        waits = []
        for (limit, _), key in zip(counted, keys, strict=True):
            n, ttl_ms = await self._hit(keys=[key], args=[limit.window_s * 1000])
            if int(n) > limit.attempts:
                waits.append(max(1, math.ceil(int(ttl_ms) / 1000)))
        if waits:
            raise RateLimited(max(waits))
        return keys

    async def give_back(self, keys: list[str]) -> None:
        for key in keys:
            await self._give_back(keys=[key])


ATTEMPTS = web.AppKey("attempt_limiter", AttemptLimiter)

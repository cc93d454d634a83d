"""Facts read from SQL and kept per process, for the hot paths that must not wait for a read.

The purchase path needs a SKU's seller and currency, a stream's lineup, a shop's terms: each a
SQL read that a crowd tapping Buy would otherwise make a thousand times a second. A
:class:`FactCache` keeps what one read found for ``ttl_s``; a change made anywhere is heard as
an event and ``forget`` drops the entry at once, so the TTL is only the backstop for a notice
lost while a process was cut off from Redis (the bus delivers at most once).

A crowd never waits for the read: an entry in the last part of its life (``RENEW_AHEAD``) is
renewed in the background while still served, and the callers who find no entry share one read
(:class:`~livecommerce.platform.sharedcalls.SharedCalls`). A read that overlapped a ``forget``
is answered but not kept: what it read may predate the change.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from livecommerce.platform.sharedcalls import SharedCalls

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

RENEW_AHEAD = 0.3
"""The last part of an entry's life (a fraction of the TTL) in which it is renewed ahead."""


class FactCache(Generic[K, V]):
    """``read(key)`` kept for ``ttl_s`` per key; at most ``limit`` keys (then it starts over).
    A fact is never ``None`` (``fresh`` answers ``None`` for "not kept")."""

    def __init__(
        self,
        read: Callable[[K], Awaitable[V]],
        ttl_s: float,
        owner: str,
        limit: int = 50_000,
    ) -> None:
        self._read = read
        self.ttl_s = ttl_s
        self._limit = limit
        self._entries: dict[K, tuple[float, V]] = {}
        self._forgets = 0  # bumped by every forget (see ``read_now``)
        self._reads = SharedCalls(owner)

    async def get(self, key: K) -> V:
        """The fact for ``key``: kept, or read (shared with the others asking meanwhile)."""
        found = self.fresh(key)
        if found is not None:
            return found
        return await self._reads.run(key, lambda: self.read_now(key))

    def fresh(self, key: K) -> V | None:
        """The fact if it is kept and fresh, else ``None``, without waiting; an entry near its
        end is renewed in the background."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        left = entry[0] - time.monotonic()
        if left <= 0:
            return None
        if left < self.ttl_s * RENEW_AHEAD:
            self._reads.refresh(key, lambda: self.read_now(key))
        return entry[1]

    async def read_now(self, key: K) -> V:
        """Read ``key`` now and keep it, unless a ``forget`` came while it was read. An
        exception (a stream not found, say) is raised and nothing kept."""
        now, forgets = time.monotonic(), self._forgets
        value = await self._read(key)
        if forgets == self._forgets:
            if len(self._entries) >= self._limit:
                self._entries.clear()
            self._entries[key] = (now + self.ttl_s, value)
        return value

    def forget(self, key: K) -> None:
        """Drop ``key``'s entry; a read under way is not kept either."""
        self._forgets += 1
        self._entries.pop(key, None)

    async def close(self) -> None:
        """Stop the reads under way; safe to call twice."""
        await self._reads.close()

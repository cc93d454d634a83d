"""Many lookups of different keys, answered by one query: what a crowd of first-time callers
costs SQL.

When ten thousand buyers tap once each, every one of them misses a per-key cache (their token,
their unpaid holds): one SQL round trip each, queued behind one another on a busy event loop.
Gathered, the keys asked for while a query runs go together in the next one (``IN (...)``), so
a burst costs a handful of queries, however large.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_BATCH = 500


class BatchedLookups(Generic[K, V]):
    """``lookup(key)`` answers ``fetch([...keys])[key]`` (``missing`` when absent), with one
    ``fetch`` at a time for every key asked meanwhile; the same key asked twice shares one
    answer. A failed ``fetch`` fails the lookups of that batch only."""

    def __init__(self, fetch: Callable[[list[K]], Awaitable[dict[K, V]]], missing: V) -> None:
        self._fetch = fetch
        self._missing = missing
        self._pending: dict[K, asyncio.Future[V]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def lookup(self, key: K) -> V:
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush(), name="batched lookups")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            keys = list(self._pending)[:MAX_BATCH]
            batch = {key: self._pending.pop(key) for key in keys}
            try:
                found = await self._fetch(keys)
            except BaseException as exc:
                for future in batch.values():
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for key, future in batch.items():
                if not future.done():
                    future.set_result(found.get(key, self._missing))

    async def close(self) -> None:
        """Finish the lookups asked; safe to call twice."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

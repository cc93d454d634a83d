"""Which process holds a stream's media, and where another process sends that stream's viewers.

The process a publisher reached holds the stream: it records its own URL in Redis
(``{ns}:media:{stream<id>}``), refreshed while it holds the stream and expiring otherwise, so a
dead process's record lapses on its own. A viewer who asks another process is sent to the holder
with the same path and query (signal.py answers that with a ``307``, which keeps the POST).

Knows Redis and URLs only: no aiortc, no aiohttp.
"""

from __future__ import annotations

import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CLAIM_TTL_S = 15
"""How long a holder's record lasts unless refreshed."""
REFRESH_EVERY_S = CLAIM_TTL_S / 3
"""How often a holder refreshes its record: two refreshes may fail before it lapses."""


class StreamRouting:
    """The Redis record of which process holds each stream, from one process's point of view.

    ``own_url`` is this process's own address (``MEDIA_URL``), the one others send viewers to.
    A Redis failure never raises: a claim not recorded is logged (viewers reaching this process
    still play), and a holder that cannot be looked up is taken as none.
    """

    def __init__(self, redis: Redis, namespace: str, own_url: str) -> None:
        self._redis = redis
        self._ns = namespace
        self.own_url = own_url.rstrip("/")

    def _key(self, stream_id: int) -> str:
        return f"{self._ns}:media:{{stream{stream_id}}}"

    async def claim(self, stream_id: int) -> None:
        """Record that this process holds the stream (again: call it every REFRESH_EVERY_S)."""
        try:
            await self._redis.set(self._key(stream_id), self.own_url, ex=CLAIM_TTL_S)
        except RedisError as exc:
            log.warning("media claim of stream %s not recorded: %s", stream_id, exc)

    async def release(self, stream_id: int) -> None:
        """Forget this process's claim on the stream; another process's claim is left alone."""
        key = self._key(stream_id)
        with contextlib.suppress(RedisError):
            if await self._redis.get(key) in (self.own_url, self.own_url.encode()):
                await self._redis.delete(key)

    async def holder(self, stream_id: int) -> str | None:
        """The URL of the process holding the stream's media, if any process does."""
        try:
            found = await self._redis.get(self._key(stream_id))
        except RedisError:
            return None
        return found.decode() if isinstance(found, bytes) else found

    async def elsewhere(self, stream_id: int, path_qs: str) -> str | None:
        """Where a viewer asking this process for ``path_qs`` must go instead: the holder's URL
        with the same path and query, or None when this process holds the stream or none does."""
        holder = await self.holder(stream_id)
        if not holder or holder == self.own_url:
            return None
        return f"{holder}{path_qs}"

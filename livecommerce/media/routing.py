"""Which process holds a stream's media, and where another process finds it.

The process a publisher reached holds the stream: it records its own URLs in Redis
(``{ns}:media:{stream<id>}``), refreshed while it holds the stream and expiring otherwise, so a
dead process's record lapses on its own. Two URLs: its public one (``MEDIA_URL``, where a
viewer may be redirected with the same path and query, a ``307`` keeping the POST) and its
internal one (``INTERNAL_URL``, where another process pulls the stream for its own viewers).
A viewer session (WHEP) is recorded too (``{ns}:media:{viewer<resource>}``: the internal URL
of the process serving it), so that its ``DELETE``, wherever a load balancer sends it, reaches
that process. The pulls are authenticated with a secret the processes share:
``MEDIA_INTERNAL_SECRET``, or else one the first process to need it generated and left in Redis
(``{ns}:media:secret``).

Knows Redis and URLs only: no aiortc, no aiohttp.
"""

from __future__ import annotations

import contextlib
import logging
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CLAIM_TTL_S = 15
"""How long a holder's record lasts unless refreshed."""
REFRESH_EVERY_S = CLAIM_TTL_S / 3
"""How often a holder refreshes its record: two refreshes may fail before it lapses."""
VIEWER_TTL_S = 24 * 3600
"""How long the record of which process serves a viewer session lasts (it is deleted when the
session ends; this bounds what a process that died leaves behind)."""


class StreamRouting:
    """The Redis record of which process holds each stream, from one process's point of view.

    ``own_url`` is this process's own address (``MEDIA_URL``), the one others send viewers to;
    ``internal_url`` the one other processes pull its streams from (default: ``own_url``).
    A Redis failure never raises: a claim not recorded is logged (viewers reaching this process
    still play), and a holder that cannot be looked up is taken as none.
    """

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        own_url: str,
        internal_url: str = "",
        secret: str = "",
    ) -> None:
        self._redis = redis
        self._ns = namespace
        self.own_url = own_url.rstrip("/")
        self.internal_url = (internal_url or own_url).rstrip("/")
        self._secret = secret

    @property
    def _record(self) -> str:
        if self.internal_url == self.own_url:
            return self.own_url
        return f"{self.own_url} {self.internal_url}"

    def _key(self, stream_id: int) -> str:
        return f"{self._ns}:media:{{stream{stream_id}}}"

    async def claim(self, stream_id: int) -> None:
        """Record that this process holds the stream (again: call it every REFRESH_EVERY_S)."""
        try:
            await self._redis.set(self._key(stream_id), self._record, ex=CLAIM_TTL_S)
        except RedisError as exc:
            log.warning("media claim of stream %s not recorded: %s", stream_id, exc)

    async def release(self, stream_id: int) -> None:
        """Forget this process's claim on the stream; another process's claim is left alone."""
        key = self._key(stream_id)
        with contextlib.suppress(RedisError):
            if await self._redis.get(key) in (self._record, self._record.encode()):
                await self._redis.delete(key)

    async def _holder_record(self, stream_id: int) -> list[str]:
        try:
            found = await self._redis.get(self._key(stream_id))
        except RedisError:
            return []
        text = found.decode() if isinstance(found, bytes) else found
        return text.split() if text else []

    async def holder(self, stream_id: int) -> str | None:
        """The URL of the process holding the stream's media, if any process does."""
        record = await self._holder_record(stream_id)
        return record[0] if record else None

    async def internal_holder(self, stream_id: int) -> str | None:
        """The internal URL of the process holding the stream, unless this process does (or
        none does): where this process pulls the stream from."""
        record = await self._holder_record(stream_id)
        if not record or record[0] == self.own_url or record[-1] == self.internal_url:
            return None
        return record[-1]

    def _viewer_key(self, resource: str) -> str:
        return f"{self._ns}:media:{{viewer{resource}}}"

    async def record_viewer(self, resource: str) -> None:
        """Record that this process serves the viewer session ``resource``."""
        try:
            await self._redis.set(self._viewer_key(resource), self.internal_url, ex=VIEWER_TTL_S)
        except RedisError as exc:
            log.warning("viewer session %s not recorded: %s", resource, exc)

    async def forget_viewer(self, resource: str) -> None:
        """Forget the record of a viewer session this process served (it ended)."""
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._viewer_key(resource))

    async def viewer_holder(self, resource: str) -> str | None:
        """The internal URL of the process serving the viewer session ``resource``, unless
        this process does (or none is recorded)."""
        try:
            found = await self._redis.get(self._viewer_key(resource))
        except RedisError:
            return None
        text = found.decode() if isinstance(found, bytes) else found
        if not text or text == self.internal_url:
            return None
        return str(text)

    async def secret(self) -> str:
        """The secret internal pulls carry: the configured one, or the one the processes sharing
        this Redis keep there (made by the first to ask). Raises ``RedisError`` if Redis cannot
        say."""
        if not self._secret:
            key = f"{self._ns}:media:secret"
            await self._redis.set(key, secrets.token_urlsafe(32), nx=True)
            found = await self._redis.get(key)
            if not found:
                raise RedisError("the internal media secret vanished from Redis")
            self._secret = found.decode() if isinstance(found, bytes) else str(found)
        return self._secret

    async def elsewhere(self, stream_id: int, path_qs: str) -> str | None:
        """Where a viewer asking this process for ``path_qs`` must go instead: the holder's URL
        with the same path and query, or None when this process holds the stream or none does."""
        holder = await self.holder(stream_id)
        if not holder or holder == self.own_url:
            return None
        return f"{holder}{path_qs}"

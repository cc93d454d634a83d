"""Which stream a purchase may name: one that exists, has not ended, and lines up the product.

A purchase's ``stream_id`` decides where its stock and sales show and whether a flash-sale price
applies, so it is checked before anything is held. The facts are cached per process, so a buy
costs no SQL read; a lineup change (``LineupChanged``) or the end of the show (``StreamEnded``)
is heard on every process at once and the stream forgotten. ``LINEUP_TTL_S`` is only the
backstop for a notice lost while a process was cut off from Redis (the bus delivers at most
once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.streams import LineupChanged, StreamEnded
from livecommerce.platform.db.tables import stream_lineup, streams
from livecommerce.platform.sharedcalls import SharedCalls

LINEUP_TTL_S = 2.0
# A cached entry in the last part of its life is renewed in the background while still served.
RENEW_AHEAD = 0.3


@dataclass(frozen=True)
class StreamFacts:
    """What the purchase path needs to know of a stream."""

    stream_id: int
    ended: bool
    lineup: frozenset[int]

    def sells(self, product_id: int) -> bool:
        """Whether a purchase of ``product_id`` may be made in this stream (``check_sells``)."""
        return not self.ended and product_id in self.lineup

    def check_sells(self, product_id: int) -> None:
        """Raise unless a purchase of ``product_id`` may be made in this stream."""
        if self.ended:
            raise LiveCommerceError(
                ErrorCode.STREAM_ENDED,
                f"stream {self.stream_id} has ended: buy without a stream, at the list price",
                stream_id=self.stream_id,
            )
        if product_id not in self.lineup:
            raise LiveCommerceError(
                ErrorCode.NOT_IN_LINEUP,
                f"that product is not in the lineup of stream {self.stream_id}",
                stream_id=self.stream_id,
            )


class StreamDirectory:
    """A per-process cache of stream facts (status and lineup), forgotten on their events."""

    def __init__(self, engine: AsyncEngine, ttl_s: float = LINEUP_TTL_S) -> None:
        self._engine = engine
        self._ttl = ttl_s
        # Bumped by every forget: a lookup that overlapped one does not cache what it read,
        # which may predate the change.
        self._forgets = 0
        self._cache: dict[int, tuple[float, StreamFacts]] = {}
        self._lookups = SharedCalls("stream lookups")

    async def close(self) -> None:
        await self._lookups.close()

    async def facts(self, stream_id: int) -> StreamFacts:
        """The stream's facts; ``not_found`` (naming the stream) if there is no such stream."""
        cached = self._cache.get(stream_id)
        if cached is not None:
            left = cached[0] - time.monotonic()
            if left > 0:
                if left < self._ttl * RENEW_AHEAD:
                    # Renewed in the background: a crowd never waits for the read at expiry.
                    self._lookups.refresh(stream_id, lambda: self._look_up(stream_id))
                return cached[1]
        return await self._lookups.run(stream_id, lambda: self._look_up(stream_id))

    def cached(self, stream_id: int) -> StreamFacts | None:
        """The facts if this process holds them fresh, else ``None`` (without waiting: an
        entry near its end is renewed in the background, as by ``facts``)."""
        cached = self._cache.get(stream_id)
        if cached is None:
            return None
        left = cached[0] - time.monotonic()
        if left <= 0:
            return None
        if left < self._ttl * RENEW_AHEAD:
            self._lookups.refresh(stream_id, lambda: self._look_up(stream_id))
        return cached[1]

    async def _look_up(self, stream_id: int) -> StreamFacts:
        now, forgets = time.monotonic(), self._forgets
        async with self._engine.connect() as conn:
            status = (
                await conn.execute(sa.select(streams.c.status).where(streams.c.id == stream_id))
            ).scalar_one_or_none()
            if status is None:
                # Not cached: a stream created a moment later is found at once.
                raise LiveCommerceError(
                    ErrorCode.NOT_FOUND, f"stream {stream_id} not found", stream_id=stream_id
                )
            lineup = frozenset(
                (
                    await conn.execute(
                        sa.select(stream_lineup.c.product_id).where(
                            stream_lineup.c.stream_id == stream_id
                        )
                    )
                ).scalars()
            )
        facts = StreamFacts(stream_id=stream_id, ended=status == "ended", lineup=lineup)
        if forgets != self._forgets:
            return facts
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[stream_id] = (now + self._ttl, facts)
        return facts

    def forget(self, stream_id: int) -> None:
        self._forgets += 1
        self._cache.pop(stream_id, None)

    async def stream_changed(self, event: LineupChanged | StreamEnded) -> None:
        self.forget(event.stream_id)

"""Which stream a purchase may name: one that exists, has not ended, and lines up the product.

A purchase's ``stream_id`` decides where its stock and sales show and whether a flash-sale price
applies, so it is checked before anything is held. The facts are cached per process, so a buy
costs no SQL read; a lineup change (``LineupChanged``) or the end of the show (``StreamEnded``)
is heard on every process at once and the stream forgotten. ``LINEUP_TTL_S`` is only the
backstop for a notice lost while a process was cut off from Redis (the bus delivers at most
once).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.streams import LineupChanged, StreamEnded
from livecommerce.platform.db.tables import stream_lineup, streams
from livecommerce.platform.factcache import FactCache

LINEUP_TTL_S = 2.0


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
        self._facts = FactCache(self._look_up, ttl_s, "stream lookups")

    async def close(self) -> None:
        await self._facts.close()

    async def facts(self, stream_id: int) -> StreamFacts:
        """The stream's facts; ``not_found`` (naming the stream) if there is no such stream."""
        return await self._facts.get(stream_id)

    def cached(self, stream_id: int) -> StreamFacts | None:
        """The facts if this process holds them fresh, else ``None`` (without waiting: an
        entry near its end is renewed in the background, as by ``facts``)."""
        return self._facts.fresh(stream_id)

    async def _look_up(self, stream_id: int) -> StreamFacts:
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
        return StreamFacts(stream_id=stream_id, ended=status == "ended", lineup=lineup)

    def forget(self, stream_id: int) -> None:
        self._facts.forget(stream_id)

    async def stream_changed(self, event: LineupChanged | StreamEnded) -> None:
        self.forget(event.stream_id)

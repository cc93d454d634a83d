"""The reaper: holds whose time ran out go back on the shelf, exactly once.

It walks the holds in Redis by deadline (no reliance on key-expiry notifications) and, for
orders whose SKU is not loaded, the reserved orders in SQL. One process sweeps at a time (a
Redis lock), and every transition it makes is a conditional UPDATE, so two reapers are harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.checkout.orders import SOLD, OrderStatus, orders_by_hold, overdue
from livecommerce.checkout.payments import Payments
from livecommerce.stock.reservations import Reservations

log = logging.getLogger(__name__)


class Reaper:
    def __init__(
        self,
        engine: AsyncEngine,
        reservations: Reservations,
        payments: Payments,
        namespace: str,
    ) -> None:
        self._engine = engine
        self._reservations = reservations
        self._payments = payments
        self._lock = f"{namespace}:reaper"

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("reaper sweep failed")
            await asyncio.sleep(interval_s)

    async def sweep(self, now_ms: int | None = None) -> int:
        """Release every hold past its deadline; returns how many were closed."""
        redis = self._reservations.redis
        if not await redis.set(self._lock, "1", nx=True, px=5000):
            return 0
        try:
            now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
            closed = 0
            for sku_id in await self._reservations.loaded_skus():
                closed += await self._sweep_sku(sku_id, now_ms)
            closed += await self._sweep_sql(now_ms)
            return closed
        finally:
            await redis.delete(self._lock)

    async def _sweep_sku(self, sku_id: int, now_ms: int) -> int:
        due = await self._reservations.due(sku_id, now_ms)
        if not due:
            return 0
        async with self._engine.connect() as conn:
            by_hold = await orders_by_hold(conn, [h.hold_id for h in due])
        closed = 0
        for hold in due:
            order = by_hold.get(hold.hold_id)
            if order is None:
                # The order row never got written (the writer died): nobody is waiting for it.
                closed += bool(await self._reservations.release(sku_id, hold.hold_id))
            elif order.status is OrderStatus.RESERVED:
                closed += await self._payments.expire(order)
            elif order.status in SOLD:
                await self._reservations.commit(sku_id, hold.hold_id)
            else:
                await self._reservations.release(sku_id, hold.hold_id)
        return closed

    async def _sweep_sql(self, now_ms: int) -> int:
        # A little grace: a hold of a loaded SKU is the Redis walk's to close.
        cutoff = datetime.fromtimestamp(now_ms / 1000 - 5, UTC)
        async with self._engine.connect() as conn:
            stale = await overdue(conn, cutoff)
        closed = 0
        for order in stale:
            closed += await self._payments.expire(order)
        return closed

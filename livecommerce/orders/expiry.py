"""The reaper: holds whose time ran out go back on the shelf, exactly once.

It walks the holds in Redis by deadline (no reliance on key-expiry notifications) and, for
orders whose SKU is not loaded, the reserved orders in SQL. One process sweeps at a time (a
Redis lock), and every transition it makes is a conditional UPDATE, so two reapers are harmless.

It works in batches, whatever the number of holds due: one pipeline finds the due holds of
every loaded SKU, one SQL read finds their orders, one UPDATE expires those with no payment
started, and one Lua call per SKU puts their units back. Only orders with a PaymentIntent go one
by one (concurrently), because Stripe must cancel each intent first. Telling the rooms never
waits: the stock push is coalesced in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.inventory.reservations import Reservations
from livecommerce.orders.orders import (
    SOLD,
    Order,
    OrderStatus,
    expire_unpaid,
    orders_by_hold,
    overdue,
)

log = logging.getLogger(__name__)

CHUNK = 1000  # rows per statement
STRIPE_CONCURRENCY = 8  # intents cancelled at once; the gateway paces calls to Stripe itself


class Closer(Protocol):
    """What the reaper needs from payments (which stand above orders): tell who waits on
    orders it expired, and expire an order whose PaymentIntent must be cancelled first."""

    async def announce(self, changed: list[Order]) -> None: ...

    async def expire(self, order: Order) -> bool: ...


class Reaper:
    def __init__(
        self,
        engine: AsyncEngine,
        reservations: Reservations,
        payments: Closer,
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
        """Release every hold past its deadline; returns how many orders were closed."""
        redis = self._reservations.redis
        if not await redis.set(self._lock, "1", nx=True, px=10_000):
            return 0
        try:
            now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
            closed = await self._sweep_redis(now_ms)
            closed += await self._sweep_sql(now_ms)
            return closed
        finally:
            await redis.delete(self._lock)

    async def _sweep_redis(self, now_ms: int) -> int:
        due = await self._reservations.due_by_sku(await self._reservations.loaded_skus(), now_ms)
        if not due:
            return 0
        hold_ids = [h for holds in due.values() for h in holds]
        by_hold: dict[str, Order] = {}
        async with self._engine.connect() as conn:
            for i in range(0, len(hold_ids), CHUNK):  # SQLite takes ~32k parameters at most
                by_hold.update(await orders_by_hold(conn, hold_ids[i : i + CHUNK]))
        to_release: dict[int, list[str]] = defaultdict(list)
        to_expire: list[Order] = []
        for sku_id, ids in due.items():
            for hold_id in ids:
                order = by_hold.get(hold_id)
                if order is None:
                    # The order row never got written (the writer died): nobody waits for it.
                    to_release[sku_id].append(hold_id)
                elif order.status is OrderStatus.RESERVED:
                    to_expire.append(order)
                elif order.status in SOLD:
                    await self._reservations.commit(sku_id, hold_id)  # paid; commit was lost
                else:
                    to_release[sku_id].append(hold_id)
        for sku_id, ids in to_release.items():
            await self._reservations.release_many(sku_id, ids)
        return await self._expire(to_expire)

    async def _sweep_sql(self, now_ms: int) -> int:
        # A little grace: a hold of a loaded SKU is the Redis walk's to close.
        cutoff = datetime.fromtimestamp(now_ms / 1000 - 5, UTC)
        closed = 0
        for _ in range(10):  # the rest waits for the next sweep (say, while Stripe is down)
            async with self._engine.connect() as conn:
                stale = await overdue(conn, cutoff, limit=CHUNK)
            moved = await self._expire(stale)
            closed += moved
            if len(stale) < CHUNK or moved == 0:
                break
        return closed

    async def _expire(self, due: list[Order]) -> int:
        """Expire reserved orders: in one UPDATE those with no payment started, one by one
        (a few at a time) those whose PaymentIntent must be cancelled first."""
        with_intent = [o for o in due if o.payment_intent_id]
        plain = [o.id for o in due if not o.payment_intent_id]
        closed = 0
        if plain:
            expired: list[Order] = []
            for i in range(0, len(plain), CHUNK):
                async with self._engine.begin() as conn:
                    expired += await expire_unpaid(conn, plain[i : i + CHUNK])
            by_sku: dict[int, list[str]] = defaultdict(list)
            for order in expired:
                by_sku[order.sku_id].append(order.hold_id)
            for sku_id, hold_ids in by_sku.items():
                await self._reservations.release_many(sku_id, hold_ids)
            await self._payments.announce(expired)
            closed += len(expired)
        if with_intent:
            gate = asyncio.Semaphore(STRIPE_CONCURRENCY)

            async def expire_one(order: Order) -> bool:
                async with gate:
                    try:
                        return await self._payments.expire(order)
                    except Exception:
                        log.exception("could not expire an order", extra={"order_id": order.id})
                        return False

            closed += sum(await asyncio.gather(*(expire_one(o) for o in with_intent)))
        return closed

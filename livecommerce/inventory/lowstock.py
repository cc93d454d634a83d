"""Low-stock alerts: a per-SKU threshold of free units, and one notice each time a SKU falls to
it or below (not one per sale after that); rising above the threshold arms it again.

Who is told and how is handed in (the catalog emails the seller). Whether a notice is due is
decided by one conditional UPDATE (``alerted_at IS NULL``), so however many processes check
the same SKU at once, one of them sends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.events.orders import OrderChanged, Purchased
from livecommerce.inventory.adjustments import held_units
from livecommerce.inventory.reservations import Reservations
from livecommerce.platform.db.tables import skus, stock_alerts, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LowStock:
    sku_id: int
    available: int
    threshold: int


@dataclass(frozen=True)
class Threshold:
    threshold: int
    alerted_at: datetime | None


async def set_threshold(conn: AsyncConnection, sku_id: int, threshold: int | None) -> None:
    """Alert at ``threshold`` free units or fewer; None: no alert for this SKU."""
    await conn.execute(stock_alerts.delete().where(stock_alerts.c.sku_id == sku_id))
    if threshold is not None:
        await conn.execute(stock_alerts.insert().values(sku_id=sku_id, threshold=threshold))


async def thresholds(conn: AsyncConnection, sku_ids: list[int]) -> dict[int, Threshold]:
    if not sku_ids:
        return {}
    rows = await conn.execute(sa.select(stock_alerts).where(stock_alerts.c.sku_id.in_(sku_ids)))
    return {
        m["sku_id"]: Threshold(m["threshold"], m["alerted_at"])
        for m in (row._mapping for row in rows)
    }


async def available_units(engine: AsyncEngine, reservations: Reservations, sku_id: int) -> int:
    """Units a buyer can still take: the live counter, or SQL's on hand minus holds."""
    level = await reservations.level(sku_id)
    if level is not None:
        return level.available
    async with engine.connect() as conn:
        on_hand = (
            await conn.execute(sa.select(skus.c.stock_on_hand).where(skus.c.id == sku_id))
        ).scalar_one_or_none()
        if on_hand is None:
            return 0
        return max(int(on_hand) - await held_units(conn, sku_id), 0)


Notify = Callable[[LowStock], Awaitable[None]]


class LowStockWatcher:
    """Checks SKUs whose stock moved; `run` checks the ones noted by sales, coalesced."""

    def __init__(self, engine: AsyncEngine, reservations: Reservations, notify: Notify) -> None:
        self._engine = engine
        self._reservations = reservations
        self._notify = notify
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()

    def note(self, sku_id: int) -> None:
        self._dirty.add(sku_id)
        self._wake.set()

    async def purchased(self, event: Purchased) -> None:
        self.note(event.sku_id)

    async def order_changed(self, event: OrderChanged) -> None:
        self.note(event.sku_id)

    async def check(self, sku_id: int) -> LowStock | None:
        """Send the notice if ``sku_id`` just fell to its threshold; the alert if one was sent."""
        async with self._engine.connect() as conn:
            found = (await thresholds(conn, [sku_id])).get(sku_id)
        if found is None:
            return None
        available = await available_units(self._engine, self._reservations, sku_id)
        low = available <= found.threshold
        async with self._engine.begin() as conn:
            armed = stock_alerts.c.alerted_at.is_(None)
            result = await conn.execute(
                stock_alerts.update()
                .where(stock_alerts.c.sku_id == sku_id, armed if low else sa.not_(armed))
                .values(alerted_at=utcnow() if low else None)
            )
        if not low or result.rowcount != 1:
            return None
        alert = LowStock(sku_id, available, found.threshold)
        await self._notify(alert)
        return alert

    async def run(self, interval_s: float = 2.0) -> None:
        """Check the noted SKUs at most every ``interval_s`` (a flash sale notes thousands)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for sku_id in dirty:
                try:
                    await self.check(sku_id)
                except Exception:
                    log.exception("low-stock check failed", extra={"sku_id": sku_id})
            await asyncio.sleep(interval_s)


LOW_STOCK = web.AppKey("low_stock", LowStockWatcher)

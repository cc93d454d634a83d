"""Flash sales: a sale price, a quantity cap and a per-buyer limit on one SKU, for 10-300 s.

The reserve script enforces the window and the caps; this module starts and stops sales and
makes sure each one is announced as ended exactly once, whichever process notices first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.bus import EventBus
from livecommerce.events.sales import SaleEnded
from livecommerce.inventory.holds import SaleWindow
from livecommerce.inventory.rebuild import load_sku
from livecommerce.inventory.reservations import Reservations
from livecommerce.live.rooms.roomstate import FlashSale, RoomState, now_ms
from livecommerce.payments.minimumcharge import check_chargeable
from livecommerce.platform.backgroundtasks import BackgroundTasks
from livecommerce.platform.db.tables import products, skus, stream_lineup

log = logging.getLogger(__name__)

MIN_SECONDS, MAX_SECONDS = 10, 300


class FlashSales:
    def __init__(
        self, engine: AsyncEngine, reservations: Reservations, room: RoomState, events: EventBus
    ) -> None:
        self._engine = engine
        self._reservations = reservations
        self._room = room
        self._events = events
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._sweeps = BackgroundTasks("flash-sale timers")

    async def start(
        self,
        stream_id: int,
        *,
        sku_id: int,
        sale_price: int,
        quantity: int,
        duration_s: int,
        per_buyer_limit: int,
    ) -> FlashSale:
        """Start a sale on a SKU of the stream's lineup; the previous sale, if any, ends."""
        if not MIN_SECONDS <= duration_s <= MAX_SECONDS:
            raise LiveCommerceError(
                ErrorCode.INVALID_INPUT,
                f"a flash sale lasts {MIN_SECONDS} to {MAX_SECONDS} seconds",
            )
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        skus.c.product_id, skus.c.price_minor, skus.c.currency, products.c.title
                    )
                    .join(products, products.c.id == skus.c.product_id)
                    .join(stream_lineup, stream_lineup.c.product_id == products.c.id)
                    .where(skus.c.id == sku_id, stream_lineup.c.stream_id == stream_id)
                )
            ).one_or_none()
        if row is None:
            raise LiveCommerceError(
                ErrorCode.INVALID_INPUT, "that SKU is not in this stream's lineup"
            )
        if sale_price > row.price_minor:
            raise LiveCommerceError(
                ErrorCode.INVALID_INPUT, "the sale price must not be above the list price"
            )
        # A price Stripe cannot charge would sell units nobody can pay for.
        check_chargeable(sale_price, row.currency)
        current = await self._room.sale(stream_id)
        if current is not None:
            await self.stop(stream_id, current.sale_id)
        starts = now_ms()
        sale = FlashSale(
            sale_id=uuid.uuid4().hex[:16],
            stream_id=stream_id,
            product_id=row.product_id,
            sku_id=sku_id,
            sale_price=sale_price,
            list_price=row.price_minor,
            currency=row.currency,
            quantity=quantity,
            per_buyer_limit=per_buyer_limit,
            starts_at=starts,
            ends_at=starts + duration_s * 1000,
        )
        window = SaleWindow(
            sale_id=sale.sale_id,
            price=sale_price,
            cap=quantity,
            sold=0,
            starts_ms=sale.starts_at,
            ends_ms=sale.ends_at,
            per_buyer_limit=per_buyer_limit,
            stream_id=stream_id,
        )
        if await self._reservations.level(sku_id) is None:
            await load_sku(self._engine, self._reservations, sku_id)
        await self._reservations.start_sale(sku_id, window)
        await self._room.set_sale(sale)
        self.schedule(sale)
        return sale

    def schedule(self, sale: FlashSale) -> None:
        """End the sale on this process's clock too (the sweep is the safety net)."""
        delay = max(sale.ends_at - now_ms(), 0) / 1000
        loop = asyncio.get_running_loop()
        self._timers[sale.sale_id] = loop.call_later(
            delay, lambda: self._sweeps.spawn(self.end_due(), "sale due")
        )

    async def stop(self, stream_id: int, sale_id: str) -> FlashSale:
        """End the stream's running sale now."""
        sale = await self._room.sale(stream_id)
        if sale is None or sale.sale_id != sale_id:
            raise LiveCommerceError(ErrorCode.SALE_NOT_ACTIVE, "that flash sale is not running")
        await self._reservations.end_sale(sale.sku_id, sale.sale_id, now_ms())
        await self._finish(sale)
        return sale

    async def end_due(self) -> int:
        """End every sale whose time is up (any process may call this); returns how many."""
        ended = 0
        for stream_id, sale_id in await self._room.due_sales(now_ms()):
            sale = await self._room.sale(stream_id)
            if sale is None or sale.sale_id != sale_id:
                await self._room.clear_sale(stream_id, sale_id)
                continue
            ended += await self._finish(sale)
        return ended

    async def _finish(self, sale: FlashSale) -> int:
        timer = self._timers.pop(sale.sale_id, None)
        if timer is not None:
            timer.cancel()
        await self._room.clear_sale(sale.stream_id, sale.sale_id)
        # Exactly one process announces the end, whichever got here first.
        if not await self._room.first_to(f"sale-ended:{sale.sale_id}", 86_400_000):
            return 0
        try:
            await self._events.publish(SaleEnded(stream_id=sale.stream_id, sale_id=sale.sale_id))
        except Exception:
            log.exception("sale end not published", extra={"sale_id": sale.sale_id})
        return 1

    async def run_clock(self, interval_s: float = 0.5) -> None:
        """Sweep for due sales forever: catches sales whose own process died."""
        while True:
            try:
                await self.end_due()
            except Exception:
                log.exception("flash-sale sweep failed")
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        """Cancel the timers and the sweeps they started; safe to call twice."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await self._sweeps.close()

"""Loading a SKU's live counters from SQL: on hand minus the units held by reserved orders.

Runs when a SKU is first sold after start-up, and whenever Redis has come up empty: nothing in
Redis is trusted to survive.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import NotFound
from livecommerce.inventory.reservations import LiveHold, Reservations
from livecommerce.platform.db.tables import orders, skus


async def load_sku(engine: AsyncEngine, reservations: Reservations, sku_id: int) -> bool:
    """Install the SKU's counters unless another process already has. True if loaded now."""
    async with engine.connect() as conn:
        sku = (
            await conn.execute(
                sa.select(skus.c.stock_on_hand, skus.c.price_minor, skus.c.currency).where(
                    skus.c.id == sku_id
                )
            )
        ).one_or_none()
        if sku is None:
            raise NotFound("SKU")
        rows = await conn.execute(
            sa.select(
                orders.c.hold_id,
                orders.c.expires_at,
                orders.c.qty,
                orders.c.buyer_id,
                orders.c.sale_id,
                orders.c.unit_price_minor,
            ).where(orders.c.sku_id == sku_id, orders.c.status == "reserved")
        )
        holds = [
            LiveHold(
                hold_id=r.hold_id,
                deadline_ms=int(r.expires_at.timestamp() * 1000),
                qty=r.qty,
                buyer_id=r.buyer_id,
                sale_id=r.sale_id,
                unit_price=r.unit_price_minor,
            )
            for r in rows
        ]
    available = max(sku.stock_on_hand - sum(h.qty for h in holds), 0)
    return await reservations.load(
        sku_id, available=available, price=sku.price_minor, currency=sku.currency, holds=holds
    )


async def unpaid_holds(engine: AsyncEngine, buyer_id: int) -> list[LiveHold]:
    """The holds of a buyer's ``reserved`` orders not yet past their deadline (all SKUs)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(
                orders.c.hold_id,
                orders.c.expires_at,
                orders.c.qty,
                orders.c.sale_id,
                orders.c.unit_price_minor,
            ).where(
                orders.c.buyer_id == buyer_id,
                orders.c.status == "reserved",
                orders.c.expires_at > datetime.now(UTC),
            )
        )
        return [
            LiveHold(
                hold_id=r.hold_id,
                deadline_ms=int(r.expires_at.timestamp() * 1000),
                qty=r.qty,
                buyer_id=buyer_id,
                sale_id=r.sale_id,
                unit_price=r.unit_price_minor,
            )
            for r in rows
        ]

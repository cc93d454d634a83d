"""Loading a SKU's live counters from SQL: on hand minus the units held by reserved orders.

Runs when a SKU is first sold after start-up, and whenever Redis has come up empty: nothing in
Redis is trusted to survive.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import NotFound
from livecommerce.inventory.holds import LiveHold
from livecommerce.inventory.reservations import Reservations
from livecommerce.platform.batchedlookups import BatchedLookups
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


async def buyers_of(engine: AsyncEngine, sku_id: int, *, within_s: float) -> set[int]:
    """The buyers with an order of ``sku_id`` placed in the last ``within_s`` seconds."""
    since = datetime.now(UTC) - timedelta(seconds=within_s)
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(orders.c.buyer_id)
            .distinct()
            .where(orders.c.sku_id == sku_id, orders.c.created_at > since)
        )
        return {int(buyer_id) for buyer_id in rows.scalars()}


class UnpaidHolds:
    """A buyer's holds of ``reserved`` orders not yet past their deadline (all SKUs), as
    ``UnpaidTotals`` seeds them. The buyers asked about together are read in one query (a
    flash sale's winners are mostly first-time buyers, each seeded once)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._lookups: BatchedLookups[int, list[LiveHold]] = BatchedLookups(
            functools.partial(_unpaid_holds_of, engine), []
        )

    async def __call__(self, buyer_id: int) -> list[LiveHold]:
        return await self._lookups.lookup(buyer_id)

    async def close(self) -> None:
        await self._lookups.close()


async def _unpaid_holds_of(engine: AsyncEngine, buyer_ids: list[int]) -> dict[int, list[LiveHold]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(
                orders.c.buyer_id,
                orders.c.hold_id,
                orders.c.expires_at,
                orders.c.qty,
                orders.c.sale_id,
                orders.c.unit_price_minor,
            ).where(
                orders.c.buyer_id.in_(buyer_ids),
                orders.c.status == "reserved",
                orders.c.expires_at > datetime.now(UTC),
            )
        )
        found: dict[int, list[LiveHold]] = {}
        for r in rows:
            found.setdefault(r.buyer_id, []).append(
                LiveHold(
                    hold_id=r.hold_id,
                    deadline_ms=int(r.expires_at.timestamp() * 1000),
                    qty=r.qty,
                    buyer_id=r.buyer_id,
                    sale_id=r.sale_id,
                    unit_price=r.unit_price_minor,
                )
            )
        return found

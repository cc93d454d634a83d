"""A seller's change of stock on hand: the live counters follow it, or it is undone.

The catalog writes the new count in SQL with the rest of the product's edit; this module then
moves the available counter in Redis by the same amount. Both counters of a SKU stay written by
the stock package alone after that first write, including the undo.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import LiveCommerceError
from livecommerce.platform.db.tables import skus
from livecommerce.stock.reservations import Reservations


async def follow_on_hand(
    engine: AsyncEngine, reservations: Reservations, sku_id: int, delta: int, price: int
) -> None:
    """Move the available units of ``sku_id`` by ``delta`` (already written to SQL's stock on
    hand) and set its list price to ``price``.

    A decrease larger than the free units (the rest are held by buyers) is refused with
    ``conflict``; the SQL count is then put back by ``delta`` (relative, so a sale recorded in
    between is kept) and the refusal raised.
    """
    try:
        await reservations.adjust(sku_id, delta, price)
    except LiveCommerceError:
        async with engine.begin() as conn:
            await conn.execute(
                skus.update()
                .where(skus.c.id == sku_id)
                .values(stock_on_hand=skus.c.stock_on_hand - delta)
            )
        raise

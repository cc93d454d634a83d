"""Stock on hand in SQL, written here alone: sales, restocks, a seller's count, and the live
counters that follow a seller's change (or its undo).

Every writer takes the caller's connection, so the change commits or rolls back with the rest
of the caller's transaction (an order moving to paid, a refund settling, a product's edit).
A SKU's row starts at 0 units (the table's default); its first count is set here as well.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.errors import LiveCommerceError
from livecommerce.inventory.reservations import Reservations
from livecommerce.platform.db.tables import skus


async def sell(conn: AsyncConnection, sku_id: int, qty: int) -> None:
    """``qty`` units of ``sku_id`` left the shelf (an order was paid)."""
    await _move(conn, sku_id, -qty)


async def restock(conn: AsyncConnection, sku_id: int, qty: int) -> None:
    """``qty`` units of ``sku_id`` came back (a refund with restock)."""
    await _move(conn, sku_id, qty)


async def set_on_hand(conn: AsyncConnection, sku_id: int, units: int) -> None:
    """A seller's count of ``sku_id``: ``units`` on hand from now on."""
    await conn.execute(skus.update().where(skus.c.id == sku_id).values(stock_on_hand=units))


async def _move(conn: AsyncConnection, sku_id: int, delta: int) -> None:
    # Relative, so concurrent sales and restocks of one SKU add up instead of overwriting.
    await conn.execute(
        skus.update().where(skus.c.id == sku_id).values(stock_on_hand=skus.c.stock_on_hand + delta)
    )


async def follow_on_hand(
    engine: AsyncEngine, reservations: Reservations, sku_id: int, delta: int, price: int
) -> None:
    """Move the available units of ``sku_id`` by ``delta`` (already written to SQL's stock on
    hand by ``set_on_hand``) and set its list price to ``price``.

    A decrease larger than the free units (the rest are held by buyers) is refused with
    ``conflict``; the SQL count is then put back by ``delta`` (relative, so a sale recorded in
    between is kept) and the refusal raised.
    """
    try:
        await reservations.adjust(sku_id, delta, price)
    except LiveCommerceError:
        async with engine.begin() as conn:
            await _move(conn, sku_id, -delta)
        raise

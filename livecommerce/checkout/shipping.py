"""Where an order ships, and what an order would cost before it is placed (a quote).

The quote and the placed order price through the same function (``orders.pricing.price``) with
the same inputs, so the figures shown before buying are the ones charged (a flash sale's price,
known only when the hold is taken, shows on the payment sheet before paying).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.addresses import get_address
from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError, NotFound
from livecommerce.orders.orders import Order, OrderStatus, get_order
from livecommerce.orders.pricing import Price, goods_before, price
from livecommerce.orders.shops import ShopTermsCache
from livecommerce.platform.db.tables import orders, products, skus, utcnow


async def ship_order_to(
    engine: AsyncEngine, order_id: int, buyer_id: int, address_id: int
) -> Order:
    """Copy one of the buyer's saved addresses onto their reserved order (replacing any).

    Only the buyer; only while the order is ``reserved`` (a paid order's address is what the
    seller ships to: changing it is customer service's, not this call's).
    """
    async with engine.begin() as conn:
        order = await get_order(conn, order_id)
        if order.buyer_id != buyer_id:
            raise Forbidden("only the buyer may choose where this order ships")
        address = await get_address(conn, buyer_id, address_id)
        moved = await conn.execute(
            orders.update()
            .where(orders.c.id == order_id, orders.c.status == OrderStatus.RESERVED.value)
            .values(shipping_address=address.snapshot(), updated_at=utcnow())
        )
        if moved.rowcount != 1:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION,
                f"a {order.status.value} order's address cannot change",
                status=order.status.value,
            )
        return await get_order(conn, order_id)


async def quote(
    engine: AsyncEngine,
    terms: ShopTermsCache,
    *,
    sku_id: int,
    qty: int,
    stream_id: int | None,
    buyer_id: int | None,
    unit_price: int | None = None,
) -> tuple[Price, bool]:
    """What ``qty`` of the SKU would cost this buyer now at ``unit_price`` (a running flash
    sale's, as the room shows it) or its list price: goods, shipping (counting their goods so
    far in the show) and tax; and whether it ships."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    skus.c.price_minor, skus.c.currency, products.c.owner_id, products.c.ships
                )
                .join(products, products.c.id == skus.c.product_id)
                .where(skus.c.id == sku_id)
            )
        ).one_or_none()
        if row is None:
            raise NotFound("SKU")
        shop = await terms.get(row.owner_id)
        before = 0
        if (
            buyer_id is not None
            and stream_id is not None
            and shop.free_shipping_over_minor is not None
        ):
            before = await goods_before(
                conn,
                buyer_id=buyer_id,
                seller_id=row.owner_id,
                stream_id=stream_id,
                currency=row.currency,
            )
    figures = price(
        unit_price=row.price_minor if unit_price is None else unit_price,
        qty=qty,
        currency=row.currency,
        terms=shop,
        goods_before=before,
    )
    return figures, bool(row.ships)

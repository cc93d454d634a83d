"""Refunds for returns: full or partial, through Stripe, with the units optionally restocked."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.checkout.orders import SOLD, Order, OrderStatus, get_order, move, set_payment
from livecommerce.checkout.stripe_gateway import StripeGateway
from livecommerce.db.tables import refunds, skus, utcnow
from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError
from livecommerce.stock.reservations import Reservations


async def refund_order(
    engine: AsyncEngine,
    gateway: StripeGateway,
    reservations: Reservations,
    order: Order,
    seller_id: int,
    *,
    amount: int | None,
    restock_qty: int,
    reason: str,
) -> tuple[Order, dict[str, Any]]:
    """Refund ``amount`` (default: all that is left) of a paid order. Seller only.

    ``restock_qty`` units go back on hand and on sale at once. Refunding everything moves
    the order to ``refunded``.
    """
    if order.seller_id != seller_id:
        raise Forbidden("only the seller may refund this order")
    if order.status not in SOLD or not order.payment_intent_id:
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION, f"a {order.status.value} order cannot be refunded"
        )
    left = order.amount_minor - order.refunded_minor
    amount = left if amount is None else amount
    if not 0 < amount <= left:
        raise LiveCommerceError(
            ErrorCode.INVALID_INPUT, f"the refund must be between 1 and {left}", refundable=left
        )
    if not 0 <= restock_qty <= order.qty:
        raise LiveCommerceError(
            ErrorCode.INVALID_INPUT, f"restock_qty must be between 0 and {order.qty}"
        )
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(refunds)
                .where(refunds.c.order_id == order.id)
            )
        ).scalar_one()
    refund_id, status = await gateway.refund(
        order.payment_intent_id, amount, f"refund-{order.id}-{count + 1}-{amount}"
    )
    async with engine.begin() as conn:
        await conn.execute(
            refunds.insert().values(
                order_id=order.id,
                stripe_refund_id=refund_id,
                amount_minor=amount,
                restocked_qty=restock_qty,
                reason=reason,
                status=status,
                created_at=utcnow(),
            )
        )
        await set_payment(conn, order.id, refunded_minor=order.refunded_minor + amount)
        if restock_qty:
            await conn.execute(
                skus.update()
                .where(skus.c.id == order.sku_id)
                .values(stock_on_hand=skus.c.stock_on_hand + restock_qty)
            )
        current = await get_order(conn, order.id)
        if current.refunded_minor >= current.amount_minor:
            current = await move(conn, current, OrderStatus.REFUNDED) or current
    if restock_qty:
        await reservations.adjust(order.sku_id, restock_qty)
    return current, {"id": refund_id, "amount": amount, "status": status, "restocked": restock_qty}

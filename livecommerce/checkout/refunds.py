"""Refunds for returns: full or partial, through Stripe, with the units optionally restocked.

A refund first reserves its amount and its restocked units on the order row, in one conditional
UPDATE (``refunded_minor + amount <= amount_minor`` and ``restocked_qty + units <= qty``), and
writes a ``requested`` refund row; only then is Stripe asked, with an idempotency key made of that
row's id. Concurrent refunds therefore queue on the order row (a row lock on PostgreSQL, the
single writer on SQLite) and can never together refund more than was paid nor restock more than
was sold. A refund Stripe refuses gives its reservation back; one whose outcome is unknown (Stripe
not answering) keeps it, so nothing is ever refunded twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.accounts.roles import role_in_stream
from livecommerce.checkout.orders import SOLD, Order, OrderStatus, get_order, move
from livecommerce.checkout.stocksync import StockSync
from livecommerce.checkout.stripe_gateway import StripeGateway
from livecommerce.db.tables import orders, refunds, skus, streams, utcnow
from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError

REQUESTED = "requested"  # reserved on the order, Stripe not (yet) answered
FAILED = "failed"  # Stripe refused; the reservation was given back


async def may_refund(conn: AsyncConnection, order: Order, user_id: int) -> bool:
    """The seller, or the team (creator, moderators) of the seller's own stream it was sold in."""
    if user_id == order.seller_id:
        return True
    if order.stream_id is None:
        return False
    creator = (
        await conn.execute(sa.select(streams.c.creator_id).where(streams.c.id == order.stream_id))
    ).scalar_one_or_none()
    if creator != order.seller_id:
        return False  # another seller's stream cannot give this seller's money back
    return (await role_in_stream(conn, order.stream_id, user_id)).can_moderate


async def refund_order(
    engine: AsyncEngine,
    gateway: StripeGateway,
    stock: StockSync,
    order: Order,
    user_id: int,
    *,
    amount: int | None,
    restock_qty: int,
    reason: str,
) -> tuple[Order, dict[str, Any]]:
    """Refund ``amount`` (default: all that is left) of a paid order.

    ``restock_qty`` units go back on hand and on sale at once. Refunding everything moves
    the order to ``refunded``. Who may: see ``may_refund``.
    """
    async with engine.connect() as conn:
        if not await may_refund(conn, order, user_id):
            raise Forbidden("only the seller or the team of the seller's stream may refund")
    if order.status not in SOLD or not order.payment_intent_id:
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION, f"a {order.status.value} order cannot be refunded"
        )
    amount = order.amount_minor - order.refunded_minor if amount is None else amount
    if amount < 1:
        _refuse(order, amount, restock_qty)
    refund_id = await _reserve(engine, order, amount, restock_qty, reason)
    try:
        stripe_id, status = await gateway.refund(
            order.payment_intent_id, amount, f"refund-{order.hold_id}-{refund_id}"
        )
    except LiveCommerceError as exc:
        if exc.code is not ErrorCode.PAYMENT_UNAVAILABLE:
            await _give_back(engine, order.id, refund_id, amount, restock_qty)
        raise
    async with engine.begin() as conn:
        # Touch the order first: concurrent settlements queue here, so the last one sees
        # every other refund settled and moves the order to ``refunded``.
        await conn.execute(
            orders.update().where(orders.c.id == order.id).values(updated_at=utcnow())
        )
        settled = (
            await conn.execute(
                refunds.update()
                .where(refunds.c.id == refund_id, refunds.c.status == REQUESTED)
                .values(stripe_refund_id=stripe_id, status=status)
            )
        ).rowcount == 1
        if settled and restock_qty:
            await conn.execute(
                skus.update()
                .where(skus.c.id == order.sku_id)
                .values(stock_on_hand=skus.c.stock_on_hand + restock_qty)
            )
        current = await get_order(conn, order.id)
        waiting = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(refunds)
                .where(refunds.c.order_id == order.id, refunds.c.status == REQUESTED)
            )
        ).scalar_one()
        if current.refunded_minor >= current.amount_minor and not waiting:
            current = await move(conn, current, OrderStatus.REFUNDED) or current
    if settled and restock_qty:
        await stock.restock(order.sku_id, restock_qty, key=f"refund-{refund_id}")
    return current, {"id": stripe_id, "amount": amount, "status": status, "restocked": restock_qty}


async def _reserve(
    engine: AsyncEngine, order: Order, amount: int, restock_qty: int, reason: str
) -> int:
    """Reserve the amount and units on the order row and write the refund row; its id."""
    async with engine.begin() as conn:
        reserved = (
            await conn.execute(
                orders.update()
                .where(
                    orders.c.id == order.id,
                    orders.c.status.in_([s.value for s in SOLD]),
                    orders.c.refunded_minor + amount <= orders.c.amount_minor,
                    orders.c.restocked_qty + restock_qty <= orders.c.qty,
                )
                .values(
                    refunded_minor=orders.c.refunded_minor + amount,
                    restocked_qty=orders.c.restocked_qty + restock_qty,
                    updated_at=utcnow(),
                )
            )
        ).rowcount == 1
        if not reserved:
            _refuse(await get_order(conn, order.id), amount, restock_qty)
        return int(
            (
                await conn.execute(
                    refunds.insert()
                    .values(
                        order_id=order.id,
                        amount_minor=amount,
                        restocked_qty=restock_qty,
                        reason=reason,
                        status=REQUESTED,
                        created_at=utcnow(),
                    )
                    .returning(refunds.c.id)
                )
            ).scalar_one()
        )


def _refuse(order: Order, amount: int, restock_qty: int) -> None:
    """Say why a reservation did not fit, from the order as it is now."""
    if order.status not in SOLD:
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION, f"a {order.status.value} order cannot be refunded"
        )
    left = order.amount_minor - order.refunded_minor
    if not 0 < amount <= left:
        raise LiveCommerceError(
            ErrorCode.INVALID_INPUT, f"the refund must be between 1 and {left}", refundable=left
        )
    restockable = order.qty - order.restocked_qty
    raise LiveCommerceError(
        ErrorCode.INVALID_INPUT,
        f"restock_qty must be between 0 and {restockable}",
        restockable=restockable,
    )


async def _give_back(
    engine: AsyncEngine, order_id: int, refund_id: int, amount: int, restock_qty: int
) -> None:
    async with engine.begin() as conn:
        released = (
            await conn.execute(
                refunds.update()
                .where(refunds.c.id == refund_id, refunds.c.status == REQUESTED)
                .values(status=FAILED)
            )
        ).rowcount == 1
        if released:
            await conn.execute(
                orders.update()
                .where(orders.c.id == order_id)
                .values(
                    refunded_minor=orders.c.refunded_minor - amount,
                    restocked_qty=orders.c.restocked_qty - restock_qty,
                    updated_at=utcnow(),
                )
            )

"""Refunds for returns: full or partial, through Stripe, with the units optionally restocked.

A refund first reserves its amount and its restocked units on the order row, in one conditional
UPDATE (``refunded_minor + amount <= amount_minor`` and ``restocked_qty + units <= qty``), and
writes a ``requested`` refund row; only then is Stripe asked, with an idempotency key made of that
row's id. Concurrent refunds therefore queue on the order row (a row lock on PostgreSQL, the
single writer on SQLite) and can never together refund more than was paid nor restock more than
was sold. A refund Stripe refuses gives its reservation back; one whose outcome is unknown (Stripe
not answering) keeps it, so nothing is ever refunded twice, and is sent again under the same key
by the next refund request for that order once it is ``STALE_AFTER`` old.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.accounts.roles import role_in_stream
from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError
from livecommerce.inventory import onhand
from livecommerce.inventory.stocksync import StockSync
from livecommerce.orders.orders import SOLD, Order, OrderStatus, get_order, move
from livecommerce.payments.stripe_gateway import StripeGateway
from livecommerce.platform.db.tables import orders, refunds, streams, utcnow

REQUESTED = "requested"  # reserved on the order, Stripe not (yet) answered
FAILED = "failed"  # Stripe refused; the reservation was given back
STALE_AFTER = timedelta(minutes=2)  # a refund still unanswered then is sent again


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
    await _retry_stale(engine, gateway, stock, order)
    async with engine.connect() as conn:
        order = await get_order(conn, order.id)
    amount = order.amount_minor - order.refunded_minor if amount is None else amount
    if amount < 1:
        _refuse(order, amount, restock_qty)
    refund_id = await _reserve(engine, order, amount, restock_qty, reason)
    stripe_id, status = await _ask_stripe(engine, gateway, order, refund_id, amount, restock_qty)
    current, settled = await _settle(engine, order, refund_id, stripe_id, status, restock_qty)
    if settled and restock_qty:
        await stock.restock(order.sku_id, restock_qty, key=f"refund-{refund_id}")
    return current, {"id": stripe_id, "amount": amount, "status": status, "restocked": restock_qty}


async def _ask_stripe(
    engine: AsyncEngine,
    gateway: StripeGateway,
    order: Order,
    refund_id: int,
    amount: int,
    restock_qty: int,
) -> tuple[str, str]:
    """Send the reserved refund; a refusal gives the reservation back, silence keeps it."""
    assert order.payment_intent_id is not None
    try:
        return await gateway.refund(
            order.payment_intent_id, amount, f"refund-{order.hold_id}-{refund_id}"
        )
    except LiveCommerceError as exc:
        if exc.code is not ErrorCode.PAYMENT_UNAVAILABLE:
            await _give_back(engine, order.id, refund_id, amount, restock_qty)
        raise


async def _retry_stale(
    engine: AsyncEngine, gateway: StripeGateway, stock: StockSync, order: Order
) -> None:
    """Send again, under their own keys, refunds left ``requested`` by a Stripe outage (or a
    crash) a while ago: Stripe answers each once, so they settle or give their share back."""
    cutoff = utcnow() - STALE_AFTER
    async with engine.connect() as conn:
        stale = (
            await conn.execute(
                sa.select(refunds.c.id, refunds.c.amount_minor, refunds.c.restocked_qty).where(
                    refunds.c.order_id == order.id,
                    refunds.c.status == REQUESTED,
                    refunds.c.created_at < cutoff,
                )
            )
        ).all()
    for refund_id, amount, restock_qty in stale:
        try:
            stripe_id, status = await _ask_stripe(
                engine, gateway, order, refund_id, amount, restock_qty
            )
        except LiveCommerceError:
            continue  # refused (given back) or still unanswered (kept)
        _current, settled = await _settle(engine, order, refund_id, stripe_id, status, restock_qty)
        if settled and restock_qty:
            await stock.restock(order.sku_id, restock_qty, key=f"refund-{refund_id}")


async def _settle(
    engine: AsyncEngine,
    order: Order,
    refund_id: int,
    stripe_id: str,
    status: str,
    restock_qty: int,
) -> tuple[Order, bool]:
    """Record Stripe's answer (once), restock, and close a fully refunded order."""
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
            await onhand.restock(conn, order.sku_id, restock_qty)
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
    return current, settled


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

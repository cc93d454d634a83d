"""A returned parcel arrives: the refund goes through Stripe (``refunds.refund_order``) and the
resellable units go back on hand and on sale through it (inventory is the only stock writer).

One "received" call wins the return (approved -> receiving, a conditional UPDATE); the others
are refused with ``invalid_transition``, so two clicks at once refund once. A refund Stripe
refuses or does not answer puts the return back to approved, to be marked received again (the
refund code keeps an unanswered refund reserved and sends it again under the same key, so that
never refunds twice either).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import InvalidInput
from livecommerce.inventory.stocksync import StockSync
from livecommerce.orders import returns
from livecommerce.orders.orders import Order, get_order
from livecommerce.payments.refunds import refund_order
from livecommerce.payments.stripe_gateway import StripeGateway


async def receive_return(
    engine: AsyncEngine,
    gateway: StripeGateway,
    stock: StockSync,
    return_id: int,
    user_id: int,
    resellable_qty: int | None,
) -> tuple[Order, returns.OrderReturn, dict[str, Any]]:
    """Mark a return received: refund it and restock ``resellable_qty`` units (default: all)."""
    order, claimed = await returns.claim_receipt(engine, return_id, user_id)
    try:
        units = claimed.qty if resellable_qty is None else resellable_qty
        if not 0 <= units <= claimed.qty:
            raise InvalidInput(
                f"resellable_qty must be between 0 and {claimed.qty}", returned_qty=claimed.qty
            )
        async with engine.connect() as conn:
            order = await get_order(conn, claimed.order_id)
            found = await returns.returns_of(conn, order.id)
        amount = returns.refund_for(order, found, claimed.qty)
        units = min(units, order.qty - order.restocked_qty)
        if amount > 0:
            order, refund = await refund_order(
                engine,
                gateway,
                stock,
                order,
                user_id,
                amount=amount,
                restock_qty=units,
                reason=f"return {claimed.rma or claimed.id}",
            )
        else:
            refund = {"id": None, "amount": 0, "status": "nothing_left", "restocked": 0}
    except Exception:
        await returns.release_receipt(engine, claimed)
        raise
    order, done = await returns.finish_receipt(engine, claimed, units, amount)
    return order, done, refund

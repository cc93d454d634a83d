"""Telling the buyer that their order moved: ``OrderChanged`` (their ``order:update`` over
Socket.IO) for each order, and one email per step.

Never raises: the orders have moved in SQL already; a bus cut off from Redis or a broken mail
server is logged, and the answer to the seller stays true.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.events.bus import EventBus
from livecommerce.events.orders import OrderChanged
from livecommerce.orders.orders import Order
from livecommerce.platform.db.tables import users
from livecommerce.platform.mail import Email, Mailer

log = logging.getLogger(__name__)


def order_changed(order: Order, extra: dict[str, Any] | None = None) -> OrderChanged:
    """The event for ``order``; ``extra`` adds keys to the buyer's view (a return's state)."""
    return OrderChanged(
        order_id=order.id,
        buyer_id=order.buyer_id,
        seller_id=order.seller_id,
        sku_id=order.sku_id,
        stream_id=order.stream_id,
        status=order.status.value,
        qty=order.qty,
        view={**order.to_dict(), **(extra or {})},
    )


class BuyerNotices:
    """What fulfillment and returns tell a buyer; built per request from the app's resources."""

    def __init__(self, engine: AsyncEngine, events: EventBus, mailer: Mailer) -> None:
        self._engine = engine
        self._events = events
        self._mailer = mailer

    async def announce(self, changed: Iterable[Order], extra: dict[str, Any] | None = None) -> None:
        for order in changed:
            try:
                await self._events.publish(order_changed(order, extra))
            except Exception:
                log.exception("order change not published", extra={"order_id": order.id})

    async def email(self, buyer_id: int, subject: str, text: str) -> None:
        async with self._engine.connect() as conn:
            address = (
                await conn.execute(sa.select(users.c.email).where(users.c.id == buyer_id))
            ).scalar_one_or_none()
        if not address:
            return
        try:
            self._mailer.send_soon(Email(str(address), subject, text))
        except Exception:
            log.exception("buyer email not queued", extra={"buyer_id": buyer_id})

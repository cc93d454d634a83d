"""One-tap buy: hold -> order -> charge -> notify, the one use-case behind every transport.

``POST /api/purchases`` and the Socket.IO ``buy`` event only translate (parse, authenticate,
map errors); what a buy does, refuses and answers is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from livecommerce.accounts.users import User
from livecommerce.checkout.purchases import MAX_QTY, Purchases
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.bus import EventBus
from livecommerce.events.orders import Purchased
from livecommerce.orders.orders import Order, OrderStatus
from livecommerce.payments.payments import Payments, describe
from livecommerce.payments.stripe_gateway import IntentState
from livecommerce.platform.lifecycle import Lifecycle

__all__ = ["MAX_QTY", "Bought", "Buy"]  # MAX_QTY: the most units one tap may take


@dataclass(frozen=True)
class Bought:
    """What one tap came to: the order (paid, if the saved card was charged), the payment
    touched (if any), and whether this was a retry answered with the first order."""

    order: Order
    replayed: bool
    payment: IntentState | None
    available_after: int | None  # units left on sale right after this hold (None: a retry)
    stock_lagging: bool  # the hold's commit or release waits for Redis
    address_required: bool = False  # goods that ship, no address yet: no charge until one

    def to_dict(self) -> dict[str, Any]:
        """The answer on every transport: ``{"order", "note"?, "payment"?, "replayed",
        "address_required"}``."""
        body = describe(self.order, self.payment, lagging=self.stock_lagging)
        body["replayed"] = self.replayed
        body["address_required"] = self.address_required
        return body


class Buy:
    """Buy ``qty`` of a SKU for a buyer, and charge their saved card at once if asked.

    Idempotent per (buyer, idempotency key): a retry answers the first order (``replayed``)
    and neither holds nor charges again. Refusals are ``LiveCommerceError``s: those of the
    hold (``out_of_stock``, ``idempotency_mismatch``, ``price_changed``, ...), of the charge
    (``card_unusable``, ``payment_failed``, ... with the order id; the order then failed and its
    units went back) and ``shutting_down`` while the process drains.
    """

    def __init__(
        self, purchases: Purchases, payments: Payments, events: EventBus, lifecycle: Lifecycle
    ) -> None:
        self._purchases = purchases
        self._payments = payments
        self._events = events
        self._lifecycle = lifecycle

    @property
    def draining(self) -> bool:
        return self._lifecycle.draining

    def refuse_if_draining(self) -> None:
        """``shutting_down`` while the process stops taking buys (transports call it first)."""
        if self._lifecycle.draining:
            raise LiveCommerceError(ErrorCode.SHUTTING_DOWN, "this server is restarting; retry")

    async def __call__(
        self,
        buyer: User,
        *,
        sku_id: int,
        qty: int,
        idempotency_key: str,
        stream_id: int | None = None,
        pay_with_saved_card: bool = True,
        unit_price_minor: int | None = None,
    ) -> Bought:
        self.refuse_if_draining()
        purchase = await self._purchases.buy(
            buyer_id=buyer.id,
            sku_id=sku_id,
            qty=qty,
            idempotency_key=idempotency_key,
            stream_id=stream_id,
            unit_price_minor=unit_price_minor,
        )
        order, state = purchase.order, None
        # Goods that ship wait for an address before any charge (the sheet asks for one).
        needs_address = order.shipping_address is None and await self.ships(order)
        if not purchase.replayed:
            # The room hears of the hold at once; the buyer does not wait for it.
            self._events.publish_soon(_purchased(order))
            if pay_with_saved_card and not needs_address:
                wallet = await self._payments.saved_card(buyer.id)  # the one read of this tap
                if wallet.payment_method_id is not None:
                    order, state = await self._payments.pay(
                        order, buyer, use_saved_card=True, wallet=wallet
                    )
        return Bought(
            order=order,
            replayed=purchase.replayed,
            payment=state,
            available_after=purchase.available_after,
            stock_lagging=self._payments.stock.lagging(order.hold_id),
            address_required=needs_address and order.status is OrderStatus.RESERVED,
        )

    async def ships(self, order: Order) -> bool:
        """Whether the order's goods ship (and so need an address before payment)."""
        return (await self._purchases.directory.facts(order.sku_id)).ships

    async def close(self) -> None:
        """Safe to call twice. The notices of buys are the event bus's to finish sending."""


def _purchased(order: Order) -> Purchased:
    return Purchased(
        order_id=order.id,
        buyer_id=order.buyer_id,
        sku_id=order.sku_id,
        stream_id=order.stream_id,
        qty=order.qty,
    )


BUY = web.AppKey("buy", Buy)

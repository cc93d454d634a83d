"""Paying for a reserved order, and the transitions a payment result causes.

The same transition comes from three places: the synchronous confirm result, Stripe's webhook,
and the expiry reaper. Each applies it through ``orders.move`` (a conditional UPDATE), so it
happens exactly once; the Redis side (commit or release of the hold) is idempotent too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.users import User
from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError
from livecommerce.events.bus import EventBus
from livecommerce.events.orders import OrderChanged
from livecommerce.inventory import onhand
from livecommerce.inventory.reservations import Reservations
from livecommerce.inventory.stocksync import StockSync
from livecommerce.orders.orders import SOLD, Order, OrderStatus, get_order, move, set_payment
from livecommerce.payments.minimumcharge import check_chargeable
from livecommerce.payments.stripe_gateway import IntentState, StripeGateway
from livecommerce.payments.wallets import Wallet, Wallets
from livecommerce.platform.db.tables import orders, products, skus, utcnow

log = logging.getLogger(__name__)

# What Stripe says about a charge that no retry with the same card will change.
_REFUSALS = frozenset(
    {ErrorCode.CARD_UNUSABLE, ErrorCode.AMOUNT_TOO_SMALL, ErrorCode.PAYMENT_FAILED}
)


def check_intent(order: Order, state: IntentState) -> None:
    """Refuse a PaymentIntent that is not this order's: another intent, amount or currency.

    Two deployments sharing a Stripe account (or a test and a live one) see each other's
    intents; only the one recorded for the order, for its amount and currency, may move it.
    """
    if not state.intent_id:
        return  # a decline before any intent was made: nothing to match
    if order.payment_intent_id is not None and state.intent_id != order.payment_intent_id:
        raise LiveCommerceError(
            ErrorCode.PAYMENT_INTENT_MISMATCH, "that payment is not this order's", order_id=order.id
        )
    if state.amount != order.amount_minor:
        raise LiveCommerceError(
            ErrorCode.AMOUNT_MISMATCH,
            f"the payment is for {state.amount}, the order for {order.amount_minor}",
            order_id=order.id,
        )
    if state.currency.upper() != order.currency.upper():
        raise LiveCommerceError(
            ErrorCode.CURRENCY_MISMATCH,
            f"the payment is in {state.currency}, the order in {order.currency}",
            order_id=order.id,
        )


def order_changed(order: Order) -> OrderChanged:
    return OrderChanged(
        order_id=order.id,
        buyer_id=order.buyer_id,
        seller_id=order.seller_id,
        sku_id=order.sku_id,
        stream_id=order.stream_id,
        status=order.status.value,
        qty=order.qty,
        view=order.to_dict(),
    )


class Payments:
    def __init__(
        self,
        engine: AsyncEngine,
        reservations: Reservations,
        gateway: StripeGateway,
        events: EventBus,
    ) -> None:
        self._engine = engine
        self._reservations = reservations
        self.gateway = gateway
        self.wallets = Wallets(engine, gateway)
        self.stock = StockSync(reservations)
        self._events = events

    async def announce(self, changed: Iterable[Order]) -> None:
        """Publish ``OrderChanged`` for each order. Never raises: the order has moved in SQL
        already, and an event bus cut off from Redis must not make the answer lie."""
        for order in changed:
            try:
                await self._events.publish(order_changed(order))
            except Exception:
                log.exception("order change not published", extra={"order_id": order.id})

    async def _notify(self, order: Order) -> None:
        await self.announce((order,))

    async def saved_card(self, user_id: int) -> Wallet:
        return await self.wallets.saved_card(user_id)

    async def card_setup(self, user: User) -> str:
        return await self.wallets.card_setup(user)

    async def save_card(self, user: User, payment_method_id: str) -> str:
        return await self.wallets.save_card(user, payment_method_id)

    async def pay(
        self,
        order: Order,
        buyer: User,
        *,
        payment_method_id: str | None = None,
        use_saved_card: bool = False,
        save_card: bool = False,
        wallet: Wallet | None = None,
    ) -> tuple[Order, IntentState | None]:
        """Pay a reserved order.

        ``wallet`` is the buyer's as the caller just read it (``saved_card``), so that one tap
        reads it once; without it it is read here.

        With ``use_saved_card`` the buyer's default card is charged off-session (one tap);
        with ``payment_method_id`` that card is confirmed now; with neither, an intent is made
        for Stripe's Payment Element and its client secret comes back. 3-D Secure comes back as
        ``requires_action`` with the client secret, for Stripe.js to finish.

        Paying an order that is already paid answers the paid order (no second charge), so a
        retry after a lost answer gets the same answer. A charge Stripe refuses raises
        ``card_unusable`` (the card or customer is gone: the saved card is forgotten),
        ``amount_too_small`` or ``payment_failed``, with the order id; the order then fails
        and its units go back, except when the buyer chose a card now and may try another.
        """
        if order.buyer_id != buyer.id:
            raise Forbidden("only the buyer may pay for this order")
        if order.status in SOLD:
            return order, None
        if order.status is not OrderStatus.RESERVED:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION, f"this order is {order.status.value}"
            )
        if order.shipping_address is None and await self._ships(order.sku_id):
            raise LiveCommerceError(
                ErrorCode.ADDRESS_REQUIRED,
                "this order ships: give it a shipping address before paying",
                order_id=order.id,
            )
        try:
            state = await self._charge(
                order,
                buyer,
                payment_method_id,
                use_saved_card=use_saved_card,
                save=save_card,
                wallet=wallet,
            )
        except LiveCommerceError as exc:
            if exc.code not in _REFUSALS:
                raise
            failed = order
            if use_saved_card or exc.code is ErrorCode.AMOUNT_TOO_SMALL:
                failed = await self.mark_failed(order, exc.code.value, exc.message)
            data = {**exc.data, "order_id": order.id, "order_status": failed.status.value}
            raise LiveCommerceError(exc.code, exc.message, **data) from None
        if use_saved_card:
            state = replace(state, one_tap=True)  # a decline ends the order
        elif save_card and payment_method_id:
            state = replace(state, save_card=True, payment_method_id=payment_method_id)
        current = await self.apply(order.id, state)
        if state.intent_id and current.payment_intent_id != state.intent_id:
            return current, None  # a duplicate payment, given back: the order's own one counts
        if payment_method_id and not use_saved_card and _declined(state):
            # A card chosen now was declined: the order stays reserved (same hold) for another
            # card, and the declined card is not kept on the customer.
            await self.wallets.drop_unpaid_card(buyer.id, payment_method_id)
            raise LiveCommerceError(
                ErrorCode.PAYMENT_FAILED,
                state.failure_message or "the card was declined",
                order_id=order.id,
                order_status=current.status.value,
                declined=True,
                decline_code=state.failure_code,
            )
        return current, state

    async def _ships(self, sku_id: int) -> bool:
        async with self._engine.connect() as conn:
            ships = (
                await conn.execute(
                    sa.select(products.c.ships)
                    .join(skus, skus.c.product_id == products.c.id)
                    .where(skus.c.id == sku_id)
                )
            ).scalar_one_or_none()
        return bool(ships)

    async def _charge(
        self,
        order: Order,
        buyer: User,
        payment_method_id: str | None,
        *,
        use_saved_card: bool,
        save: bool,
        wallet: Wallet | None,
    ) -> IntentState:
        check_chargeable(order.amount_minor, order.currency)
        if wallet is None:
            wallet = await self.saved_card(buyer.id)
        customer_id = await self.wallets.customer(buyer, wallet)
        off_session = False
        if use_saved_card:
            if wallet.payment_method_id is None:
                raise LiveCommerceError(ErrorCode.INVALID_INPUT, "no saved card: add one first")
            payment_method_id, off_session = wallet.payment_method_id, True
        try:
            if order.payment_intent_id and payment_method_id:
                return await self._confirm(order.payment_intent_id, payment_method_id, save)
            if order.payment_intent_id:
                return await self.gateway.retrieve(order.payment_intent_id)
            return await self.gateway.charge(
                order_id=order.id,
                hold_id=order.hold_id,
                amount=order.amount_minor,
                currency=order.currency,
                customer_id=customer_id,
                payment_method_id=payment_method_id,
                off_session=off_session,
                save_card=save,
            )
        except LiveCommerceError as exc:
            if exc.code is ErrorCode.CARD_UNUSABLE:
                await self.wallets.forget_gone(buyer.id, customer_id, forget_card=use_saved_card)
            raise

    async def _confirm(self, intent_id: str, payment_method_id: str, save: bool) -> IntentState:
        try:
            return await self.gateway.confirm(intent_id, payment_method_id, save_card=save)
        except LiveCommerceError as exc:
            if exc.code is not ErrorCode.PAYMENT_FAILED:
                raise
            # Refused because it is paid already (a double tap confirmed it first): that is
            # the answer, not a refusal.
            current = await self.gateway.retrieve(intent_id)
            if current.succeeded or current.status == "processing":
                return current
            raise

    async def sync(self, order: Order) -> Order:
        """Bring the order in line with its PaymentIntent as Stripe has it now."""
        if not order.payment_intent_id:
            return order
        return await self.apply(order.id, await self.gateway.retrieve(order.payment_intent_id))

    async def apply(self, order_id: int, state: IntentState) -> Order:
        """Apply a PaymentIntent's state to its order, exactly once whatever the source.

        The intent must be the order's (``check_intent``); the first one seen is recorded.
        """
        try:
            order = await self._record(order_id, state)
        except LiveCommerceError as exc:
            async with self._engine.connect() as conn:
                current = await get_order(conn, order_id)
            if not await self._refund_duplicate(current, state, exc):
                raise
            return current
        if state.succeeded:
            return await self.mark_paid(order, state)
        if state.status == "canceled":
            return await self.mark_failed(order, "payment_canceled", "the payment was cancelled")
        if _declined(state) and state.one_tap:
            # A one-tap charge declined ends the order; a card chosen now leaves it reserved
            # (same hold, until it expires) for the buyer to try another card.
            assert state.failure_code is not None
            return await self.mark_failed(
                order, state.failure_code, state.failure_message or "the card was declined"
            )
        await self._notify(order)
        return order

    async def _record(self, order_id: int, state: IntentState) -> Order:
        """Check the intent is the order's, record it if it is the first, note its status."""
        async with self._engine.begin() as conn:
            order = await get_order(conn, order_id)
            check_intent(order, state)
            if state.intent_id and order.payment_intent_id is None:
                await conn.execute(
                    orders.update()
                    .where(orders.c.id == order.id, orders.c.payment_intent_id.is_(None))
                    .values(payment_intent_id=state.intent_id, updated_at=utcnow())
                )
                order = await get_order(conn, order_id)
                check_intent(order, state)  # another intent was recorded meanwhile
            if order.status is OrderStatus.RESERVED:
                await set_payment(
                    conn,
                    order.id,
                    payment_status=state.status,
                    failure_code=state.failure_code,
                    failure_message=state.failure_message,
                )
            return await get_order(conn, order_id)

    async def mark_paid(self, order: Order, state: IntentState) -> Order:
        """reserved → paid, stock on hand down, hold committed. A late payment is refunded."""
        async with self._engine.begin() as conn:
            if order.status is OrderStatus.RESERVED:
                paid = await move(
                    conn,
                    order,
                    OrderStatus.PAID,
                    paid_at=utcnow(),
                    payment_status=state.status,
                    failure_code=None,
                    failure_message=None,
                )
                if paid is not None:
                    await onhand.sell(conn, order.sku_id, order.qty)
            current = await get_order(conn, order.id)
        if current.status is OrderStatus.PAID and order.status is OrderStatus.RESERVED:
            # The money has moved: a Redis outage from here on must not make the answer lie.
            await self.stock.commit(order.sku_id, order.hold_id)
            if state.save_card and state.payment_method_id and not state.one_tap:
                # Only a card that has paid becomes the one-tap card (here, after 3-D Secure
                # or from the webhook alike).
                await self.wallets.remember_card(order.buyer_id, state.payment_method_id)
            await self._notify(current)
        elif current.status in (OrderStatus.EXPIRED, OrderStatus.CANCELLED, OrderStatus.FAILED):
            # The money arrived after the units went back on the shelf: give it back.
            await self._refund_late(current, state)
        return current

    async def _refund_duplicate(
        self, order: Order, state: IntentState, mismatch: LiveCommerceError
    ) -> bool:
        """A second intent of ours for an order paid through another (two payments raced):
        the second charge goes back in full. True if this was such an intent."""
        if (
            mismatch.code is not ErrorCode.PAYMENT_INTENT_MISMATCH
            or not state.succeeded
            or state.hold_id != order.hold_id
        ):
            return False
        log.warning(
            "a second payment for one order; refunding it",
            extra={"order_id": order.id, "intent_id": state.intent_id},
        )
        await self.gateway.refund(state.intent_id, state.amount, f"duplicate-{state.intent_id}")
        return True

    async def _refund_late(self, order: Order, state: IntentState) -> None:
        if order.refunded_minor >= order.amount_minor:
            return
        log.warning("payment arrived for a closed order; refunding", extra={"order_id": order.id})
        await self.gateway.refund(state.intent_id, order.amount_minor, f"late-{order.hold_id}")
        async with self._engine.begin() as conn:
            await set_payment(
                conn,
                order.id,
                refunded_minor=order.amount_minor,
                payment_status="refunded",
                failure_code="late_payment_refunded",
                failure_message="the payment came after the hold expired and was refunded",
            )
            order = await get_order(conn, order.id)
        await self._notify(order)

    async def mark_failed(self, order: Order, code: str, message: str) -> Order:
        return (await self.close(order, OrderStatus.FAILED, code, message))[0]

    async def close(
        self, order: Order, target: OrderStatus, code: str | None, message: str | None
    ) -> tuple[Order, bool]:
        """reserved → failed/expired/cancelled: the hold goes back on the shelf, exactly once.

        Returns the order as it is now, and whether this call made the move.
        """
        if order.status is not OrderStatus.RESERVED:
            return order, False
        async with self._engine.begin() as conn:
            closed = await move(conn, order, target, failure_code=code, failure_message=message)
            current = closed or await get_order(conn, order.id)
        if closed is not None:
            await self.stock.release(order.sku_id, order.hold_id)
            await self._notify(closed)
        return current, closed is not None

    async def cancel(self, order: Order, buyer: User) -> Order:
        """The buyer changes their mind before paying."""
        if order.buyer_id != buyer.id:
            raise Forbidden("only the buyer may cancel this order")
        if order.status is not OrderStatus.RESERVED:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION, f"a {order.status.value} order cannot be cancelled"
            )
        state = await self._cancel_intent(order)
        if state is not None and state.succeeded:
            return await self.mark_paid(order, state)
        closed, _moved = await self.close(
            order, OrderStatus.CANCELLED, "cancelled", "cancelled by buyer"
        )
        return closed

    async def expire(self, order: Order) -> bool:
        """A reserved order ran out of time: cancel its intent, then put the stock back.

        True if this call expired it (False: already closed, or the payment had succeeded).
        """
        state = await self._cancel_intent(order)
        if state is not None and state.succeeded:
            await self.mark_paid(order, state)
            return False
        _order, moved = await self.close(order, OrderStatus.EXPIRED, "expired", "the hold expired")
        return moved

    async def _cancel_intent(self, order: Order) -> IntentState | None:
        """Cancel the order's intent; None if it has none, or Stripe does not know it (no money
        can have moved on an intent the provider never had)."""
        if not order.payment_intent_id:
            return None
        try:
            return await self.gateway.cancel(order.payment_intent_id)
        except LiveCommerceError as exc:
            if exc.code is not ErrorCode.UNKNOWN_PAYMENT_INTENT:
                raise
            log.warning("the order's payment is unknown to Stripe", extra={"order_id": order.id})
            return None

    def describe(self, order: Order, state: IntentState | None) -> dict[str, Any]:
        """The answer to a payment: the order, its payment, and a note if stock lags."""
        return describe(order, state, lagging=self.stock.lagging(order.hold_id))


def _declined(state: IntentState) -> bool:
    return bool(state.failure_code) and state.status == "requires_payment_method"


_BROWSER_STEPS = ("requires_action", "requires_payment_method", "requires_confirmation")
LAGGING_NOTE = "the order is settled; the live stock counters catch up when the store is back"


def describe(order: Order, state: IntentState | None, *, lagging: bool) -> dict[str, Any]:
    """``{"order", "note"?, "payment"?}``: ``note`` while the hold's commit or release waits
    for Redis; ``payment`` when a PaymentIntent was touched (its client secret only while the
    browser has something to do)."""
    body: dict[str, Any] = {"order": order.to_dict()}
    if lagging:
        body["note"] = LAGGING_NOTE
    if state is not None:
        body["payment"] = {
            "status": state.status,
            "client_secret": state.client_secret if state.status in _BROWSER_STEPS else None,
        }
    return body


PAYMENTS = web.AppKey("payments", Payments)

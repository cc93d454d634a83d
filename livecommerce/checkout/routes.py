"""HTTP routes for purchases, orders, saved cards, refunds and the Stripe webhook."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from livecommerce.accounts.roles import Role, role_in_stream
from livecommerce.accounts.routes import current_user
from livecommerce.checkout.buy import BUY
from livecommerce.checkout.orders import Order, OrderStatus, get_order, list_orders
from livecommerce.checkout.payments import PAYMENTS
from livecommerce.checkout.purchases import MAX_QTY
from livecommerce.checkout.refunds import refund_order
from livecommerce.checkout.webhooks import WEBHOOKS
from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, path_id, query, read_json

IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]
PaymentMethodId = Annotated[
    str, StringConstraints(min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_]+$")
]


class NewPurchase(Payload):
    sku_id: int = Field(ge=1, le=MAX_ID)
    qty: int = Field(default=1, ge=1, le=MAX_QTY)
    stream_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    pay_with_saved_card: bool = Field(
        default=True, description="charge the saved card at once, if there is one (one tap)"
    )


class PayOrder(Payload):
    payment_method_id: PaymentMethodId | None = None
    use_saved_card: bool = False
    save_card: bool = False


class NewCard(Payload):
    payment_method_id: PaymentMethodId


class NewRefund(Payload):
    amount_minor: int | None = Field(default=None, ge=1, le=10**11)
    restock_qty: int = Field(default=0, ge=0, le=MAX_QTY)
    reason: str = Field(default="", max_length=200)


class OrderQuery(Payload):
    role: Annotated[str, StringConstraints(pattern="^(buyer|seller)$")] = "buyer"
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=10**6)


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 200 or not key.isascii() or not key.isprintable() or " " in key:
        raise LiveCommerceError(
            ErrorCode.INVALID_INPUT,
            "send an Idempotency-Key header (1-200 printable characters, no spaces)",
        )
    return key


async def post_purchase(request: web.Request) -> web.Response:
    """The HTTP face of ``checkout.buy``: 201 for a new order, 200 for a retry's answer."""
    buy = request.app[BUY]
    buy.refuse_if_draining()
    buyer = await current_user(request)
    key = _idempotency_key(request)
    body = await read_json(request, NewPurchase)
    bought = await buy(
        buyer,
        sku_id=body.sku_id,
        qty=body.qty,
        idempotency_key=key,
        stream_id=body.stream_id,
        pay_with_saved_card=body.pay_with_saved_card,
    )
    return web.json_response(bought.to_dict(), status=200 if bought.replayed else 201)


async def _visible_order(request: web.Request) -> Order:
    """The order in the path, if the caller may see it (buyer, seller or the stream's team)."""
    order_id = path_id(request, what="order")
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        order = await get_order(conn, order_id)
        if user.id not in (order.buyer_id, order.seller_id):
            allowed = False
            if order.stream_id is not None:
                role = await role_in_stream(conn, order.stream_id, user.id)
                allowed = role is not Role.VIEWER
            if not allowed:
                raise Forbidden(
                    "only the buyer, the seller or the stream's team may see this order"
                )
    return order


async def get_one_order(request: web.Request) -> web.Response:
    order = await _visible_order(request)
    return web.json_response({"order": order.to_dict()})


async def get_orders(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = query(request, OrderQuery)
    async with request.app[ENGINE].connect() as conn:
        found = await list_orders(
            conn,
            buyer_id=user.id if q.role == "buyer" else None,
            seller_id=user.id if q.role == "seller" else None,
            limit=q.limit,
            offset=q.offset,
        )
    return web.json_response({"orders": [o.to_dict() for o in found]})


async def post_pay(request: web.Request) -> web.Response:
    order_id = path_id(request, what="order")
    buyer = await current_user(request)
    body = await read_json(request, PayOrder)
    async with request.app[ENGINE].connect() as conn:
        order = await get_order(conn, order_id)
    payments = request.app[PAYMENTS]
    order, state = await payments.pay(
        order,
        buyer,
        payment_method_id=body.payment_method_id,
        use_saved_card=body.use_saved_card,
        save_card=body.save_card,
    )
    return web.json_response(payments.describe(order, state))


async def post_sync(request: web.Request) -> web.Response:
    order = await request.app[PAYMENTS].sync(await _visible_order(request))
    return web.json_response({"order": order.to_dict()})


async def post_cancel(request: web.Request) -> web.Response:
    order_id = path_id(request, what="order")
    buyer = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        order = await get_order(conn, order_id)
    order = await request.app[PAYMENTS].cancel(order, buyer)
    return web.json_response({"order": order.to_dict()})


async def post_refund(request: web.Request) -> web.Response:
    order_id = path_id(request, what="order")
    user = await current_user(request)
    body = await read_json(request, NewRefund)
    async with request.app[ENGINE].connect() as conn:
        order = await get_order(conn, order_id)
    payments = request.app[PAYMENTS]
    order, refund = await refund_order(
        request.app[ENGINE],
        payments.gateway,
        payments.stock,
        order,
        user.id,
        amount=body.amount_minor,
        restock_qty=body.restock_qty,
        reason=body.reason,
    )
    return web.json_response({"order": order.to_dict(), "refund": refund}, status=201)


async def get_card(request: web.Request) -> web.Response:
    user = await current_user(request)
    wallet = await request.app[PAYMENTS].saved_card(user.id)
    label = wallet.card_label
    return web.json_response({"card": {"label": label} if wallet.payment_method_id else None})


async def post_card(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, NewCard)
    label = await request.app[PAYMENTS].save_card(user, body.payment_method_id)
    return web.json_response({"card": {"label": label}}, status=201)


async def post_card_setup(request: web.Request) -> web.Response:
    user = await current_user(request)
    secret = await request.app[PAYMENTS].card_setup(user)
    return web.json_response({"client_secret": secret}, status=201)


async def post_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    result = await request.app[WEBHOOKS].handle(payload, request.headers.get("Stripe-Signature"))
    return web.json_response(result)


_ID = r"{id:\d+}"
_KEY = (("Idempotency-Key", True, "one key per purchase attempt; retries reuse it"),)
OPERATIONS = (
    Operation(
        "POST",
        "/api/purchases",
        post_purchase,
        "Buy: hold the stock and place the order (one tap with a saved card)",
        "checkout",
        body=NewPurchase,
        auth=True,
        status=201,
        headers=_KEY,
        errors=(402, 404, 409, 503),
    ),
    Operation(
        "GET",
        "/api/orders",
        get_orders,
        "Your orders, as buyer or seller",
        "checkout",
        query=OrderQuery,
        auth=True,
    ),
    Operation("GET", f"/api/orders/{_ID}", get_one_order, "One order", "checkout", auth=True),
    Operation(
        "POST",
        f"/api/orders/{_ID}/payment",
        post_pay,
        "Pay a reserved order: saved card, a given card, or a Payment Element intent",
        "checkout",
        body=PayOrder,
        auth=True,
        errors=(402, 409, 503),
    ),
    Operation(
        "POST",
        f"/api/orders/{_ID}/sync",
        post_sync,
        "Refresh the order from its payment (after 3-D Secure)",
        "checkout",
        auth=True,
        errors=(409, 503),
    ),
    Operation(
        "POST",
        f"/api/orders/{_ID}/cancel",
        post_cancel,
        "Cancel a reserved order (buyer)",
        "checkout",
        auth=True,
        errors=(409,),
    ),
    Operation(
        "POST",
        f"/api/orders/{_ID}/refunds",
        post_refund,
        "Refund all or part of a paid order, optionally restocking (seller)",
        "checkout",
        body=NewRefund,
        auth=True,
        status=201,
        errors=(409, 503),
    ),
    Operation("GET", "/api/cards", get_card, "Your saved card", "checkout", auth=True),
    Operation(
        "POST",
        "/api/cards/setup",
        post_card_setup,
        "Start saving a card: a SetupIntent client secret for Stripe.js",
        "checkout",
        auth=True,
        status=201,
        errors=(402, 503),
    ),
    Operation(
        "POST",
        "/api/cards",
        post_card,
        "Save a card for one-tap buys",
        "checkout",
        body=NewCard,
        auth=True,
        status=201,
        errors=(402, 503),
    ),
    Operation(
        "POST",
        "/api/stripe/webhook",
        post_webhook,
        "Stripe webhook (signed)",
        "checkout",
        raw_body="application/json",
        errors=(400,),
    ),
)

__all__ = ["OPERATIONS", "OrderStatus"]

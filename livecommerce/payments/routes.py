"""HTTP routes for paying, cancelling and refunding orders, saved cards and the Stripe webhook."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from livecommerce.accounts.routes import current_user
from livecommerce.orders.orders import MAX_QTY, get_order
from livecommerce.orders.routes import ORDER_ID, visible_order
from livecommerce.payments.cards import CARDS
from livecommerce.payments.payments import PAYMENTS
from livecommerce.payments.refunds import refund_order
from livecommerce.payments.webhooks import WEBHOOKS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import Payload, path_id, query, read_json

PaymentMethodId = Annotated[
    str, StringConstraints(min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_]+$")
]


class PayOrder(Payload):
    payment_method_id: PaymentMethodId | None = None
    use_saved_card: bool = False
    save_card: bool = False


class NewCard(Payload):
    payment_method_id: PaymentMethodId


class CardQuery(Payload):
    list: Annotated[str, StringConstraints(pattern="^[01]$")] = "0"


class NewRefund(Payload):
    amount_minor: int | None = Field(default=None, ge=1, le=10**11)
    restock_qty: int = Field(default=0, ge=0, le=MAX_QTY)
    reason: str = Field(default="", max_length=200)


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
    order = await request.app[PAYMENTS].sync(await visible_order(request))
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
    one_tap = {"id": wallet.payment_method_id, "label": label} if wallet.payment_method_id else None
    body: dict[str, object] = {"card": one_tap}
    if query(request, CardQuery).list == "1":
        body["cards"] = await request.app[CARDS].list(user)
    return web.json_response(body)


async def delete_card(request: web.Request) -> web.Response:
    user = await current_user(request)
    cards = request.app[CARDS]
    await cards.remove(user, request.match_info["card_id"])
    return web.json_response({"cards": await cards.list(user)})


async def put_card(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, NewCard)
    cards = request.app[CARDS]
    label = await cards.replace(user, request.match_info["card_id"], body.payment_method_id)
    return web.json_response({"card": {"label": label}, "cards": await cards.list(user)})


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


OPERATIONS = (
    Operation(
        "POST",
        f"/api/orders/{ORDER_ID}/payment",
        post_pay,
        "Pay a reserved order: saved card, a given card, or a Payment Element intent",
        "checkout",
        body=PayOrder,
        auth=True,
        errors=(402, 409, 503),
    ),
    Operation(
        "POST",
        f"/api/orders/{ORDER_ID}/sync",
        post_sync,
        "Refresh the order from its payment (after 3-D Secure)",
        "checkout",
        auth=True,
        errors=(409, 503),
    ),
    Operation(
        "POST",
        f"/api/orders/{ORDER_ID}/cancel",
        post_cancel,
        "Cancel a reserved order (buyer)",
        "checkout",
        auth=True,
        errors=(409,),
    ),
    Operation(
        "POST",
        f"/api/orders/{ORDER_ID}/refunds",
        post_refund,
        "Refund all or part of a paid order, optionally restocking (seller)",
        "checkout",
        body=NewRefund,
        auth=True,
        status=201,
        errors=(409, 503),
    ),
    Operation(
        "GET",
        "/api/cards",
        get_card,
        "Your one-tap card (`card`); with `?list=1` every saved card too (`cards`)",
        "checkout",
        query=CardQuery,
        auth=True,
        errors=(503,),
    ),
    Operation(
        "DELETE",
        "/api/cards/{card_id}",
        delete_card,
        "Remove one of your saved cards (the one-tap card too: the next Buy asks for a card)",
        "checkout",
        auth=True,
        errors=(404, 503),
    ),
    Operation(
        "PUT",
        "/api/cards/{card_id}",
        put_card,
        "Replace one of your saved cards with a new one, which becomes the one-tap card",
        "checkout",
        body=NewCard,
        auth=True,
        errors=(402, 404, 503),
    ),
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

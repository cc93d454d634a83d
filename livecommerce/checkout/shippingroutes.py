"""HTTP routes for shipping: an order's address, and a price quote before buying."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from livecommerce.accounts.routes import current_user, optional_user
from livecommerce.checkout.shipping import quote, ship_order_to
from livecommerce.orders.orders import MAX_QTY
from livecommerce.orders.routes import ORDER_ID
from livecommerce.orders.shops import SHOP_TERMS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, path_id, query, read_json


class ShipTo(Payload):
    address_id: int = Field(ge=1, le=MAX_ID, description="one of your saved addresses")


class QuoteQuery(Payload):
    sku_id: int = Field(ge=1, le=MAX_ID)
    qty: int = Field(default=1, ge=1, le=MAX_QTY)
    stream_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    unit_price_minor: int | None = Field(
        default=None,
        ge=0,
        le=10**11,
        description="price a unit at this (a running flash sale's price); default: list price",
    )


async def put_shipping_address(request: web.Request) -> web.Response:
    order_id = path_id(request, what="order")
    buyer = await current_user(request)
    body = await read_json(request, ShipTo)
    order = await ship_order_to(request.app[ENGINE], order_id, buyer.id, body.address_id)
    return web.json_response({"order": order.to_dict()})


async def get_quote(request: web.Request) -> web.Response:
    q = query(request, QuoteQuery)
    user = await optional_user(request)
    figures, ships = await quote(
        request.app[ENGINE],
        request.app[SHOP_TERMS],
        sku_id=q.sku_id,
        qty=q.qty,
        stream_id=q.stream_id,
        buyer_id=user.id if user else None,
        unit_price=q.unit_price_minor,
    )
    return web.json_response({"quote": {**figures.to_dict(), "ships": ships}})


OPERATIONS = (
    Operation(
        "PUT",
        f"/api/orders/{ORDER_ID}/shipping-address",
        put_shipping_address,
        "Ship a reserved order to one of your saved addresses (buyer)",
        "checkout",
        body=ShipTo,
        auth=True,
        errors=(409,),
    ),
    Operation(
        "GET",
        "/api/quote",
        get_quote,
        "What a purchase would cost now: goods, shipping, tax and total (list price)",
        "checkout",
        query=QuoteQuery,
        errors=(404,),
    ),
)

"""HTTP routes for reading orders: one order, and a buyer's or seller's list (newest first,
paginated), each with what was bought (``item``)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from livecommerce.accounts.roles import Role, role_in_stream
from livecommerce.accounts.routes import current_user
from livecommerce.errors import Forbidden
from livecommerce.orders.orders import Order, OrderStatus, get_order, items, list_orders
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, path_id, query

ORDER_ID = r"{id:\d+}"  # the order in a path, as /api/orders/{id}/...


class OrderQuery(Payload):
    role: Annotated[str, StringConstraints(pattern="^(buyer|seller)$")] = "buyer"
    status: OrderStatus | None = None
    sku_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=10**6)


async def visible_order(request: web.Request) -> Order:
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
    order = await visible_order(request)
    async with request.app[ENGINE].connect() as conn:
        item = (await items(conn, {order.sku_id})).get(order.sku_id)
    return web.json_response({"order": {**order.to_dict(), "item": item}})


async def get_orders(request: web.Request) -> web.Response:
    """Newest first; ``next_offset`` is where the next page starts (null: no more)."""
    user = await current_user(request)
    q = query(request, OrderQuery)
    async with request.app[ENGINE].connect() as conn:
        found = await list_orders(
            conn,
            buyer_id=user.id if q.role == "buyer" else None,
            seller_id=user.id if q.role == "seller" else None,
            status=q.status,
            sku_id=q.sku_id,
            limit=q.limit + 1,
            offset=q.offset,
        )
        page = found[: q.limit]
        what = await items(conn, {o.sku_id for o in page})
    return web.json_response(
        {
            "orders": [{**o.to_dict(), "item": what.get(o.sku_id)} for o in page],
            "next_offset": q.offset + q.limit if len(found) > q.limit else None,
        }
    )


OPERATIONS = (
    Operation(
        "GET",
        "/api/orders",
        get_orders,
        "Your orders, as buyer or seller: newest first, paginated (`limit`, `offset`,"
        " `next_offset`), optionally by `status` or `sku_id`",
        "checkout",
        query=OrderQuery,
        auth=True,
    ),
    Operation("GET", f"/api/orders/{ORDER_ID}", get_one_order, "One order", "checkout", auth=True),
)

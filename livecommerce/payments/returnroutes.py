"""HTTP routes for returns: the shop's returns policy, a buyer's request, the seller's answer
(approve with an RMA, refuse with a reason) and the receipt that refunds."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, StringConstraints

from livecommerce.accounts.routes import current_user
from livecommerce.orders import returns
from livecommerce.orders.fulfillment import desk_scope
from livecommerce.orders.fulfillmentroutes import notices
from livecommerce.orders.orders import MAX_QTY, Order
from livecommerce.orders.routes import ORDER_ID, visible_order
from livecommerce.payments.payments import PAYMENTS
from livecommerce.payments.returnreceipts import receive_return
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import Payload, path_id, query, read_json

RETURN_ID = r"{id:\d+}"


class PolicyBody(Payload):
    return_window_days: int = Field(ge=0, le=365)
    free_returns: bool


class NewReturn(Payload):
    qty: int = Field(ge=1, le=MAX_QTY)
    reason: str = Field(min_length=1, max_length=500)


class Approval(Payload):
    note: str = Field(default="", max_length=500)


class Refusal(Payload):
    reason: str = Field(min_length=1, max_length=500)


class Receipt(Payload):
    resellable_qty: int | None = Field(default=None, ge=0, le=MAX_QTY)


class ReturnsQuery(Payload):
    status: (
        Annotated[
            str,
            StringConstraints(pattern="^(requested|approved|refused|receiving|received)$"),
        ]
        | None
    ) = None


async def get_policy(request: web.Request) -> web.Response:
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        rules = await returns.policy(conn, user.id)
    return web.json_response({"policy": rules.to_dict()})


async def put_policy(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, PolicyBody)
    rules = await returns.set_policy(
        request.app[ENGINE],
        user.id,
        returns.ReturnPolicy(body.return_window_days, body.free_returns),
    )
    return web.json_response({"policy": rules.to_dict()})


async def get_order_returns(request: web.Request) -> web.Response:
    order = await visible_order(request)
    async with request.app[ENGINE].connect() as conn:
        rules = await returns.policy(conn, order.seller_id)
        found = await returns.returns_of(conn, order.id)
    deadline = returns.return_by(order, rules)
    return web.json_response(
        {
            "order": order.to_dict(),
            "policy": rules.to_dict(),
            "return_by": deadline.isoformat() if deadline else None,
            "returnable_qty": returns.returnable_qty(order, found)
            if order.status.value == "delivered"
            else 0,
            "returns": [r.to_dict(order.currency) for r in found],
        }
    )


async def _tell(
    request: web.Request, order: Order, found: returns.OrderReturn, subject: str, text: str
) -> dict[str, Any]:
    view = found.to_dict(order.currency)
    said = notices(request)
    await said.announce((order,), {"return": view})
    await said.email(order.buyer_id, subject, text)
    return {"order": order.to_dict(), "return": view}


async def post_return(request: web.Request) -> web.Response:
    user = await current_user(request)
    order_id = path_id(request, what="order")
    body = await read_json(request, NewReturn)
    order, found = await returns.request_return(
        request.app[ENGINE], order_id, user.id, body.qty, body.reason
    )
    answer = await _tell(
        request,
        order,
        found,
        f"We received your return request for order #{order.id}",
        f"You asked to return {found.qty} unit(s) of order #{order.id}.\n"
        f"Reason: {found.reason}\nThe seller will answer soon.\n",
    )
    return web.json_response(answer, status=201)


async def get_returns(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = query(request, ReturnsQuery)
    async with request.app[ENGINE].connect() as conn:
        found = await returns.seller_returns(conn, desk_scope(user.id), q.status)
    return web.json_response({"returns": [r.to_dict(currency) for r, currency in found]})


async def post_approve(request: web.Request) -> web.Response:
    user = await current_user(request)
    return_id = path_id(request, what="return")
    body = await read_json(request, Approval)
    order, found = await returns.approve(request.app[ENGINE], return_id, user.id, body.note)
    answer = await _tell(
        request,
        order,
        found,
        f"Return approved for order #{order.id}: {found.rma}",
        f"Your return of {found.qty} unit(s) of order #{order.id} is approved.\n"
        f"RMA number: {found.rma}\n\n{found.instructions}\n",
    )
    return web.json_response(answer)


async def post_refuse(request: web.Request) -> web.Response:
    user = await current_user(request)
    return_id = path_id(request, what="return")
    body = await read_json(request, Refusal)
    order, found = await returns.refuse(request.app[ENGINE], return_id, user.id, body.reason)
    answer = await _tell(
        request,
        order,
        found,
        f"Return refused for order #{order.id}",
        f"The seller refused your return of order #{order.id}.\nReason: {found.refusal_reason}\n",
    )
    return web.json_response(answer)


async def post_receive(request: web.Request) -> web.Response:
    user = await current_user(request)
    return_id = path_id(request, what="return")
    body = await read_json(request, Receipt)
    payments = request.app[PAYMENTS]
    order, found, refund = await receive_return(
        request.app[ENGINE],
        payments.gateway,
        payments.stock,
        return_id,
        user.id,
        body.resellable_qty,
    )
    amount = f"{(found.refund_minor or 0) / 100:.2f} {order.currency}"
    answer = await _tell(
        request,
        order,
        found,
        f"Refund on its way for order #{order.id}",
        f"We received your return {found.rma} of order #{order.id}.\n"
        f"Refunded: {amount}, to the card you paid with.\n",
    )
    return web.json_response({**answer, "refund": refund})


OPERATIONS = (
    Operation(
        "GET",
        "/api/shop/returns-policy",
        get_policy,
        "Your shop's returns policy (window in days, free returns)",
        "returns",
        auth=True,
    ),
    Operation(
        "PUT",
        "/api/shop/returns-policy",
        put_policy,
        "Set your shop's returns policy",
        "returns",
        body=PolicyBody,
        auth=True,
    ),
    Operation(
        "GET",
        f"/api/orders/{ORDER_ID}/returns",
        get_order_returns,
        "An order's returns, the policy and until when a return may be asked",
        "returns",
        auth=True,
    ),
    Operation(
        "POST",
        f"/api/orders/{ORDER_ID}/returns",
        post_return,
        "Ask to return units of a delivered order (buyer)",
        "returns",
        body=NewReturn,
        auth=True,
        status=201,
        errors=(409,),
    ),
    Operation(
        "GET",
        "/api/returns",
        get_returns,
        "Returns of the orders on your order desk",
        "returns",
        query=ReturnsQuery,
        auth=True,
    ),
    Operation(
        "POST",
        f"/api/returns/{RETURN_ID}/approve",
        post_approve,
        "Approve a return: an RMA number and instructions (seller)",
        "returns",
        body=Approval,
        auth=True,
        errors=(409,),
    ),
    Operation(
        "POST",
        f"/api/returns/{RETURN_ID}/refuse",
        post_refuse,
        "Refuse a return with a reason (seller)",
        "returns",
        body=Refusal,
        auth=True,
        errors=(409,),
    ),
    Operation(
        "POST",
        f"/api/returns/{RETURN_ID}/receive",
        post_receive,
        "The returned units arrived: refund through Stripe and restock the resellable ones",
        "returns",
        body=Receipt,
        auth=True,
        errors=(409, 503),
    ),
)

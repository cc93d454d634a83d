"""HTTP route for buying: ``POST /api/purchases``, the HTTP face of the buy use-case."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from livecommerce.accounts.routes import current_user
from livecommerce.checkout.buy import BUY
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.orders.orders import MAX_QTY
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, read_json

IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]


class NewPurchase(Payload):
    sku_id: int = Field(ge=1, le=MAX_ID)
    qty: int = Field(default=1, ge=1, le=MAX_QTY)
    stream_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    pay_with_saved_card: bool = Field(
        default=True, description="charge the saved card at once, if there is one (one tap)"
    )


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
)

"""HTTP route for buying: ``POST /api/purchases``, the HTTP face of the buy use-case.

After a flash sale's last unit, nearly every tap is refused "sold out", and that refusal is the
request a crowd makes thousands of times a second. It is answered here on a short path when the
answer is sure (``Purchases.quick_refusal``: a token this process knows, a body of the plain
shape, the sold-out board's notice): no JSON parser or model, no SQL or Redis, and an answer
encoded once. Anything else, a buyer who holds units of the SKU among them, takes the full path.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from livecommerce.accounts.routes import current_user, known_user
from livecommerce.checkout.buy import BUY
from livecommerce.checkout.purchases import PURCHASES
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.inventory.soldout import SALE_SOLD_OUT, SOLD_OUT, Refusal
from livecommerce.orders.orders import MAX_QTY
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, read_body, read_json

# A flat JSON object of at most four members whose values are small whole numbers, true, false
# or null: the shape every tap sends. Whatever else comes is read by the full parser.
_WS = rb"[ \t\n\r]*"
_MEMBER = rb'"([a-z_]{1,20})"' + _WS + rb":" + _WS + rb"(0|[1-9][0-9]{0,9}|true|false|null)"
_FLAT_BODY = re.compile(
    _WS + rb"\{" + _WS + _MEMBER + _WS + rb"(?:," + _WS + _MEMBER + _WS + rb"){0,3}\}" + _WS
)
_MEMBERS = re.compile(_MEMBER)


def _encoded(refusal: Refusal) -> bytes:
    return json.dumps(refusal.error().to_dict()).encode()


# The board's refusals, encoded once (the very bytes ``error_response`` would send).
_REFUSALS = {
    refusal: (_encoded(refusal), refusal.error().status) for refusal in (SOLD_OUT, SALE_SOLD_OUT)
}

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


def _plain_purchase(raw: bytes) -> tuple[int, int, int | None] | None:
    """(sku_id, qty, stream_id) if ``raw`` is a body of the plain shape that ``NewPurchase``
    accepts with exactly these values; ``None`` for anything else (the full parser decides)."""
    if _FLAT_BODY.fullmatch(raw) is None:
        return None
    members = dict(_MEMBERS.findall(raw))
    if len(members) != len(_MEMBERS.findall(raw)) or not members.keys() <= _PLAIN_FIELDS:
        return None  # a repeated or unknown member: the parser names it
    sku, qty, stream, pay = (members.get(name) for name in _PLAIN_FIELD_ORDER)
    if pay is not None and pay not in (b"true", b"false"):
        return None
    if sku is None or not sku.isdigit() or not 1 <= int(sku) <= MAX_ID:
        return None
    quantity = 1 if qty is None else int(qty) if qty.isdigit() else 0
    if not 1 <= quantity <= MAX_QTY:
        return None
    if stream is None or stream == b"null":
        return int(sku), quantity, None
    if not stream.isdigit() or not 1 <= int(stream) <= MAX_ID:
        return None
    return int(sku), quantity, int(stream)


_PLAIN_FIELD_ORDER = (b"sku_id", b"qty", b"stream_id", b"pay_with_saved_card")
_PLAIN_FIELDS = frozenset(_PLAIN_FIELD_ORDER)


async def _quick_refusal(request: web.Request) -> web.Response | None:
    """The sold-out answer, if it is sure without the full path (see the module's docstring)."""
    if request.content_type != "application/json":
        return None
    buyer = known_user(request)
    if buyer is None:
        return None
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 200 or not key.isascii() or not key.isprintable() or " " in key:
        return None
    plain = _plain_purchase(await read_body(request))  # kept: the full path reads it again
    if plain is None:
        return None
    sku_id, qty, stream_id = plain
    refusal: Refusal | None = request.app[PURCHASES].quick_refusal(
        buyer_id=buyer.id, sku_id=sku_id, qty=qty, stream_id=stream_id
    )
    if refusal is None:
        return None
    body, status = _REFUSALS.get(refusal) or (_encoded(refusal), refusal.error().status)
    return web.Response(
        body=body,
        status=status,
        content_type="application/json",
        charset="utf-8",
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
    refused = await _quick_refusal(request)
    if refused is not None:
        return refused
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

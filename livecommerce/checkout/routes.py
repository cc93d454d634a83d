"""HTTP route for buying: ``POST /api/purchases``, the HTTP face of the buy use-case.

After a flash sale's last unit, nearly every tap is refused "sold out", and that refusal is the
request a crowd makes thousands of times a second. It is answered here on a short path when the
answer is sure (``Purchases.quick_refusal``: a token this process knows, a body of the plain
shape, the sold-out board's notice): no JSON parser or model, no SQL or Redis, and an answer
encoded once. Anything else, a buyer who holds units of the SKU among them, goes on to the
use-case; a plain body read on the short path is not parsed a second time.

The listener's fast lane (``quick_answer``) takes the same short path on bytes aiohttp has not
parsed, and a plain tap it cannot refuse goes straight to the use-case from there too
(``_bought``): a sale's winners, all in its first fraction of a second, skip aiohttp's request
and response objects and the middlewares, about a third of a winner's CPU, which the winners
after them would otherwise wait for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Coroutine
from typing import Annotated, Any

from aiohttp import web
from pydantic import ConfigDict, Field, StringConstraints

from livecommerce.accounts.routes import current_user, known_user
from livecommerce.accounts.users import TOKENS, User
from livecommerce.checkout.buy import BUY, Bought, Buy
from livecommerce.checkout.purchases import PURCHASES
from livecommerce.errors import ErrorCode, LiveCommerceError, failure
from livecommerce.inventory.soldout import SALE_SOLD_OUT, SOLD_OUT, Refusal
from livecommerce.orders.orders import MAX_QTY
from livecommerce.platform.fastlane import Answer, FastRequest, Reply
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, read_body, read_json

# A flat JSON object of at most five members whose values are small whole numbers, true, false
# or null: the shape every tap sends. Whatever else comes is read by the full parser.
_WS = rb"[ \t\n\r]*"
_MEMBER = rb'"([a-z_]{1,20})"' + _WS + rb":" + _WS + rb"(0|[1-9][0-9]{0,9}|true|false|null)"
_FLAT_BODY = re.compile(
    _WS + rb"\{" + _WS + _MEMBER + _WS + rb"(?:," + _WS + _MEMBER + _WS + rb"){0,4}\}" + _WS
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
    model_config = ConfigDict(frozen=True)  # a plain body's reading is shared (see below)

    sku_id: int = Field(ge=1, le=MAX_ID)
    qty: int = Field(default=1, ge=1, le=MAX_QTY)
    stream_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    pay_with_saved_card: bool = Field(
        default=True, description="charge the saved card at once, if there is one (one tap)"
    )
    unit_price_minor: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ID,
        description="the unit price the buyer was shown: never charged more (price_changed)",
    )


# A crowd sends the same few bodies (one SKU, one quantity): each is read once and kept.
_PLAIN_SEEN: dict[bytes, NewPurchase | None] = {}
_PLAIN_SEEN_MAX = 4096
_PLAIN_SEEN_BODY_MAX = 256


def _plain_purchase(raw: bytes) -> NewPurchase | None:
    """The purchase if ``raw`` is a body of the plain shape, exactly as ``NewPurchase`` would
    read it; ``None`` for anything else (the full parser decides, and names what is wrong).
    The answer is a frozen model, shared by every request that sent the same bytes."""
    try:
        return _PLAIN_SEEN[raw]
    except KeyError:
        pass
    purchase = _read_plain(raw)
    if len(raw) <= _PLAIN_SEEN_BODY_MAX:
        if len(_PLAIN_SEEN) >= _PLAIN_SEEN_MAX:
            _PLAIN_SEEN.clear()
        _PLAIN_SEEN[raw] = purchase
    return purchase


def _read_plain(raw: bytes) -> NewPurchase | None:
    if _FLAT_BODY.fullmatch(raw) is None:
        return None
    found = _MEMBERS.findall(raw)
    members = dict(found)
    if len(members) != len(found) or not members.keys() <= _PLAIN_FIELDS:
        return None  # a repeated or unknown member
    sku, qty, stream, pay, agreed = (members.get(name) for name in _PLAIN_FIELD_ORDER)
    if pay is not None and pay not in (b"true", b"false"):
        return None
    if sku is None or not sku.isdigit() or not 1 <= int(sku) <= MAX_ID:
        return None
    quantity = 1 if qty is None else int(qty) if qty.isdigit() else 0
    if not 1 <= quantity <= MAX_QTY:
        return None
    stream_id = None
    if stream is not None and stream != b"null":
        if not stream.isdigit() or not 1 <= int(stream) <= MAX_ID:
            return None
        stream_id = int(stream)
    unit_price = None
    if agreed is not None and agreed != b"null":
        if not agreed.isdigit() or int(agreed) > MAX_ID:
            return None
        unit_price = int(agreed)
    return NewPurchase.model_construct(
        sku_id=int(sku),
        qty=quantity,
        stream_id=stream_id,
        pay_with_saved_card=pay != b"false",
        unit_price_minor=unit_price,
    )


_PLAIN_FIELD_ORDER = (b"sku_id", b"qty", b"stream_id", b"pay_with_saved_card", b"unit_price_minor")
_PLAIN_FIELDS = frozenset(_PLAIN_FIELD_ORDER)


def _valid_key(key: str) -> bool:
    return bool(key) and len(key) <= 200 and key.isascii() and key.isprintable() and " " not in key


async def _plain_request(request: web.Request) -> tuple[User, str, NewPurchase] | None:
    """(buyer, key, purchase) of a request the full path would read the same way, when that is
    sure without SQL or the JSON parser: a known token, a valid key, a plain body."""
    if request.content_type != "application/json":
        return None
    buyer = known_user(request)
    if buyer is None:
        return None
    key = request.headers.get("Idempotency-Key", "").strip()
    if not _valid_key(key):
        return None
    body = _plain_purchase(await read_body(request))  # kept: the full path reads it again
    return None if body is None else (buyer, key, body)


def _refusal_answer(refusal: Refusal) -> tuple[bytes, int]:
    return _REFUSALS.get(refusal) or (_encoded(refusal), refusal.error().status)


def _refused(refusal: Refusal) -> web.Response:
    body, status = _refusal_answer(refusal)
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not _valid_key(key):
        raise LiveCommerceError(
            ErrorCode.INVALID_INPUT,
            "send an Idempotency-Key header (1-200 printable characters, no spaces)",
        )
    return key


def quick_answer(app: web.Application) -> Answer:
    """The listener's fast lane for ``POST /api/purchases`` (``platform.fastlane``): the short
    path of ``post_purchase`` on the bytes of a request aiohttp has not parsed; ``None``, so
    that aiohttp and ``post_purchase`` answer, whenever the short path would not refuse."""
    buy, purchases, tokens = app[BUY], app[PURCHASES], app[TOKENS]

    def answer(request: FastRequest) -> tuple[int, bytes] | Coroutine[Any, Any, Reply] | None:
        if buy.draining or request.content_type is None or request.authorization is None:
            return None
        if request.content_type.split(";", 1)[0].strip().lower() != "application/json":
            return None
        if request.authorization[:7].lower() != "bearer ":
            return None  # a cookie's request: the cross-site check reads more headers
        buyer = tokens.known(request.authorization[7:].strip())
        key = (request.idempotency_key or "").strip()
        if buyer is None or not _valid_key(key):
            return None
        body = _plain_purchase(request.body)
        if body is None:
            return None
        refusal = purchases.quick_refusal(
            buyer_id=buyer.id, sku_id=body.sku_id, qty=body.qty, stream_id=body.stream_id
        )
        if refusal is None:
            return _bought(buy, buyer, key, body)
        encoded, status = _refusal_answer(refusal)
        return status, encoded

    return answer


async def _bought(buy: Buy, buyer: User, key: str, body: NewPurchase) -> Reply:
    """``post_purchase``'s answer to a plain tap, for the fast lane: the same bytes."""
    try:
        bought = await _place(buy, buyer, key, body)
    except Exception as exc:
        status, error, headers = failure(exc, "POST /api/purchases")
        return Reply(status, json.dumps(error).encode(), tuple(headers.items()))
    return Reply(200 if bought.replayed else 201, json.dumps(bought.to_dict()).encode())


async def post_purchase(request: web.Request) -> web.Response:
    """The HTTP face of ``checkout.buy``: 201 for a new order, 200 for a retry's answer."""
    buy = request.app[BUY]
    buy.refuse_if_draining()
    plain = await _plain_request(request)
    if plain is not None:
        buyer, key, body = plain
        refusal = request.app[PURCHASES].quick_refusal(
            buyer_id=buyer.id, sku_id=body.sku_id, qty=body.qty, stream_id=body.stream_id
        )
        if refusal is not None:
            return _refused(refusal)
    else:
        buyer = await current_user(request)
        key = _idempotency_key(request)
        body = await read_json(request, NewPurchase)
    bought = await _place(buy, buyer, key, body)
    return web.json_response(bought.to_dict(), status=200 if bought.replayed else 201)


async def _place(buy: Buy, buyer: User, key: str, body: NewPurchase) -> Bought:
    return await buy(
        buyer,
        sku_id=body.sku_id,
        qty=body.qty,
        idempotency_key=key,
        stream_id=body.stream_id,
        pay_with_saved_card=body.pay_with_saved_card,
        unit_price_minor=body.unit_price_minor,
    )


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

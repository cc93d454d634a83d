"""Payloads of the ``/live`` client events, checked before any room logic runs.

The moderator events' ``*Terms`` (pin, sale, mute, slow mode, blocked words) are also the JSON
bodies of their REST twins (roomroutes.py), where the stream id is in the URL instead.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from livecommerce.checkout.buy import MAX_QTY
from livecommerce.live.rooms.flashsales import MAX_SECONDS, MIN_SECONDS
from livecommerce.platform.payload import MAX_ID, Payload

Key = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
StreamId = Annotated[int, Field(ge=1, le=MAX_ID)]


class Join(Payload):
    stream_id: StreamId


class InStream(Payload):
    stream_id: StreamId


class PinTerms(Payload):
    product_id: int = Field(ge=1, le=MAX_ID)
    sku_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class Pin(PinTerms):
    stream_id: StreamId


class SaleTerms(Payload):
    sku_id: int = Field(ge=1, le=MAX_ID)
    sale_price: int = Field(ge=0, le=10**11)
    quantity: int = Field(ge=1, le=100_000)
    duration_s: int = Field(ge=MIN_SECONDS, le=MAX_SECONDS)
    per_buyer_limit: int = Field(default=1, ge=1, le=MAX_QTY)


class SaleStart(SaleTerms):
    stream_id: StreamId


class SaleStop(Payload):
    stream_id: StreamId
    sale_id: str = Field(min_length=1, max_length=40)


class BuyTerms(Payload):
    sku_id: int = Field(ge=1, le=MAX_ID)
    qty: int = Field(default=1, ge=1, le=MAX_QTY)
    idempotency_key: Key
    stream_id: StreamId | None = None
    pay_with_saved_card: bool = True  # false: hold only, the buyer pays with another card
    unit_price_minor: int | None = Field(default=None, ge=0, le=MAX_ID)  # the price shown


class ChatSend(Payload):
    stream_id: StreamId
    text: str = Field(min_length=1, max_length=300)


class ChatDelete(Payload):
    stream_id: StreamId
    message_id: str = Field(min_length=1, max_length=40)


class MuteTerms(Payload):
    user_id: int = Field(ge=1, le=MAX_ID)
    seconds: int = Field(default=300, ge=10, le=7 * 24 * 3600)


class ChatMute(MuteTerms):
    stream_id: StreamId


class ChatUnmute(Payload):
    stream_id: StreamId
    user_id: int = Field(ge=1, le=MAX_ID)


class SlowModeTerms(Payload):
    seconds: int = Field(ge=0, le=600)


class SlowMode(SlowModeTerms):
    stream_id: StreamId


class BlockedWordsTerms(Payload):
    words: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(
        max_length=200
    )


class BlockedWords(BlockedWordsTerms):
    stream_id: StreamId


class Reaction(Payload):
    stream_id: StreamId
    kind: str = Field(min_length=1, max_length=20)

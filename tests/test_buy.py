"""``checkout.buy``: one use-case behind ``POST /api/purchases`` and the Socket.IO ``buy``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.lifecycle import LIFECYCLE
from tests.conftest import Account
from tests.liveclient import Viewer
from tests.shopping import OK_CARD, buy, card, open_shop


def _url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def _socket_of(account: Account, viewers: list[Viewer]) -> Viewer:
    socket = Viewer()
    viewers.append(socket)
    await socket.connect(_url(account.client), account.token)
    return socket


async def test_both_transports_give_the_same_answers_and_refusals(
    client: TestClient[Any, Any], settings: Settings, viewers: list[Viewer]
) -> None:
    seller, buyer, sku = await open_shop(client, stock=5)
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    socket = await _socket_of(buyer, viewers)
    key = uuid.uuid4().hex

    status, first = await buy(buyer, sku, key=key)
    assert status == 201 and first["order"]["status"] == "paid" and first["replayed"] is False
    # A retry over either transport is answered alike, with the first order and no new charge.
    status, over_http = await buy(buyer, sku, key=key)
    over_socket = await socket.call("buy", {"sku_id": sku, "idempotency_key": key})
    assert status == 200 and over_http["replayed"] is True
    assert over_socket == {"ok": True, **over_http}
    assert over_http["order"] == first["order"]

    # The same key for another purchase: the same refusal, naming the same order.
    status, mismatch = await buy(buyer, sku, qty=2, key=key)
    refused = await socket.call("buy", {"sku_id": sku, "qty": 2, "idempotency_key": key})
    assert status == 409 and mismatch["error"]["code"] == "idempotency_mismatch"
    assert refused == mismatch

    # The seller's own product: refused alike, nothing held.
    seller_socket = await _socket_of(seller, viewers)
    status, own = await buy(seller, sku)
    refused = await seller_socket.call("buy", {"sku_id": sku, "idempotency_key": "own-1"})
    assert status == 403 and own["error"]["code"] == "forbidden"
    assert refused == own

    # Shown a lower price than the price now (49.00): refused alike, nothing charged.
    status, dearer = await buy(buyer, sku, unit_price_minor=3900)
    refused = await socket.call(
        "buy", {"sku_id": sku, "idempotency_key": "shown-1", "unit_price_minor": 3900}
    )
    assert status == 409 and dearer["error"]["code"] == "price_changed"
    assert refused == dearer and dearer["error"]["unit_price_minor"] == 4900

    # A new tap over the socket charges the saved card too, and answers like the HTTP one.
    tapped = await socket.call("buy", {"sku_id": sku, "idempotency_key": uuid.uuid4().hex})
    assert tapped["ok"] and tapped["order"]["status"] == "paid"
    assert tapped.keys() == {"ok", *first.keys()}


async def test_while_draining_both_transports_refuse_to_buy(
    client: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    _seller, buyer, sku = await open_shop(client, stock=5)
    socket = await _socket_of(buyer, viewers)
    client.app[LIFECYCLE].draining = True
    try:
        status, over_http = await buy(buyer, sku)
        over_socket = await socket.call("buy", {"sku_id": sku, "idempotency_key": "k-1"})
    finally:
        client.app[LIFECYCLE].draining = False
    assert status == 503 and over_http["error"]["code"] == "shutting_down"
    assert over_socket == over_http


@contextmanager
def _card_reads(client: TestClient[Any, Any]) -> Iterator[list[str]]:
    """The SQL statements that read a saved card, as the real engine runs them."""
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "default_payment_method_id" in statement and statement.lstrip().upper().startswith(
            "SELECT"
        ):
            reads.append(statement)

    engine = client.app[ENGINE].sync_engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield reads
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


async def test_one_tap_reads_the_saved_card_once(
    client: TestClient[Any, Any], settings: Settings, viewers: list[Viewer]
) -> None:
    _seller, buyer, sku = await open_shop(client, stock=5)
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    socket = await _socket_of(buyer, viewers)
    key = uuid.uuid4().hex
    with _card_reads(client) as reads:
        status, body = await buy(buyer, sku, key=key)
    assert status == 201 and body["order"]["status"] == "paid"
    assert len(reads) == 1, reads
    with _card_reads(client) as reads:
        tapped = await socket.call("buy", {"sku_id": sku, "idempotency_key": uuid.uuid4().hex})
    assert tapped["ok"] and tapped["order"]["status"] == "paid"
    assert len(reads) == 1, reads
    # Without the one-tap flag, or for a retry, the card is not read at all.
    with _card_reads(client) as reads:
        status, _ = await buy(buyer, sku, pay_with_saved_card=False)
        assert status == 201
        status, _ = await buy(buyer, sku, key=key)
        assert status == 200
    assert reads == []

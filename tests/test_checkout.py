"""The purchase path over HTTP, against real Redis, SQL and localstripe (a Stripe emulator)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import stripe
from aiohttp.test_utils import TestClient

from livecommerce.accounts.users import TOKENS
from livecommerce.config import Settings
from livecommerce.inventory.holds import StockLevel
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.orders.expiry import Reaper
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import orders, skus, webhook_events
from livecommerce.platform.resources import REDIS
from tests.conftest import Account, hoodie, sign_up
from tests.shopping import (
    DECLINED_CARD,
    OK_CARD,
    THREE_DS_CARD,
    buy,
    card,
    open_shop,
    signed,
    stock_on_hand,
)

__all__ = ["DECLINED_CARD", "OK_CARD", "THREE_DS_CARD", "card"]  # other test modules use these


async def _shop(client: TestClient[Any, Any], stock: int = 5) -> tuple[Account, Account, int]:
    return await open_shop(client, stock)


async def test_one_tap_with_a_saved_card(client: TestClient[Any, Any], settings: Settings) -> None:
    seller, buyer, sku = await _shop(client)
    saved = await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    assert saved["card"]["label"] == "Visa •••• 4242"
    status, body = await buy(buyer, sku, qty=2)
    assert status == 201, body
    assert body["order"]["status"] == "paid"
    assert body["order"]["amount"] == {"amount": 9800, "currency": "USD"}
    assert await stock_on_hand(client, sku) == 3
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (3, 0)
    seen = await seller.call("GET", f"/api/orders/{body['order']['id']}", status=200)
    assert seen["order"]["status"] == "paid"
    mine = await buyer.call("GET", "/api/orders", status=200)
    assert [o["id"] for o in mine["orders"]] == [body["order"]["id"]]


async def test_first_time_buyer_pays_through_the_payment_element(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, sku = await _shop(client)
    status, body = await buy(buyer, sku)
    assert status == 201 and body["order"]["status"] == "reserved"
    order_id = body["order"]["id"]
    element = await buyer.call("POST", f"/api/orders/{order_id}/payment", {}, status=200)
    assert element["payment"]["status"] == "requires_payment_method"
    assert element["payment"]["client_secret"]
    paid = await buyer.call(
        "POST",
        f"/api/orders/{order_id}/payment",
        {"payment_method_id": await card(settings, OK_CARD), "save_card": True},
        status=200,
    )
    assert paid["order"]["status"] == "paid"
    assert (await buyer.call("GET", "/api/cards"))["card"]["label"].endswith("4242")


async def test_declined_card_puts_the_stock_back(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, sku = await _shop(client, stock=1)
    await buyer.call(
        "POST",
        "/api/cards",
        {"payment_method_id": await card(settings, DECLINED_CARD)},
        status=201,
    )
    status, body = await buy(buyer, sku)
    assert status == 201
    assert body["order"]["status"] == "failed"
    assert body["order"]["failure"]["code"] == "card_declined"
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (1, 0)
    assert await stock_on_hand(client, sku) == 1


async def test_three_d_secure_then_sync(client: TestClient[Any, Any], settings: Settings) -> None:
    _seller, buyer, sku = await _shop(client)
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    result = await buyer.call(
        "POST",
        f"/api/orders/{order_id}/payment",
        {"payment_method_id": await card(settings, THREE_DS_CARD)},
        status=200,
    )
    assert result["payment"]["status"] == "requires_action"
    assert result["order"]["status"] == "reserved"
    secret = result["payment"]["client_secret"]
    intent_id = secret.split("_secret_")[0]
    # What Stripe.js does when the buyer passes the bank's challenge.
    async with httpx.AsyncClient(base_url=settings.stripe_api_base) as http:
        answer = await http.post(
            f"/v1/payment_intents/{intent_id}/_authenticate",
            data={"client_secret": secret, "success": "true"},
            auth=(settings.stripe_secret_key, ""),
        )
        assert answer.status_code == 200
    synced = await buyer.call("POST", f"/api/orders/{order_id}/sync", status=200)
    assert synced["order"]["status"] == "paid"


async def test_idempotent_retries_hold_once(client: TestClient[Any, Any]) -> None:
    _seller, buyer, sku = await _shop(client, stock=3)
    first_status, first = await buy(buyer, sku, key="tap-42")
    again_status, again = await buy(buyer, sku, key="tap-42")
    assert (first_status, again_status) == (201, 200)
    assert again["order"]["id"] == first["order"]["id"] and again["replayed"]
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and level.held == 1
    status, mismatch = await buy(buyer, sku, qty=2, key="tap-42")
    assert status == 409 and mismatch["error"]["code"] == "idempotency_mismatch"
    status, _missing = (
        await buyer.client.post("/api/purchases", json={"sku_id": sku}, headers=buyer.headers),
        None,
    )
    assert status.status == 422


async def test_a_reused_key_in_a_burst_fails_alone(client: TestClient[Any, Any]) -> None:
    """Orders written together (one transaction) where one reuses a key for another SKU."""
    seller, buyer, sku = await _shop(client, stock=30)
    other = (await seller.call("POST", "/api/products", hoodie("OTHER-1", 5), status=201))[
        "product"
    ]["variants"][0]["id"]
    crowd = [await sign_up(client, f"crowd{i}") for i in range(12)]
    results = await asyncio.gather(
        buy(buyer, sku, key="same-key"),
        buy(buyer, other, key="same-key"),
        *(buy(account, sku) for account in crowd),
    )
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) == 13 and statuses.count(409) == 1
    refused = next(body for status, body in results if status == 409)
    assert refused["error"]["code"] == "idempotency_mismatch"
    # Either of the two same-key buys may win; the loser's hold went back.
    sku_level = await client.app[RESERVATIONS].level(sku)
    other_level = await client.app[RESERVATIONS].level(other)
    assert (sku_level.held if sku_level else 0) + (other_level.held if other_level else 0) == 13


async def test_expiry_returns_stock_exactly_once(client: TestClient[Any, Any]) -> None:
    _seller, buyer, sku = await _shop(client, stock=2)
    _status, body = await buy(buyer, sku, qty=2)
    order_id = body["order"]["id"]
    await buyer.call("POST", f"/api/orders/{order_id}/payment", {}, status=200)  # an intent
    status, _ = await buy(buyer, sku)
    assert status == 409
    app = client.app
    from livecommerce.payments.payments import PAYMENTS

    reaper = Reaper(app[ENGINE], app[RESERVATIONS], app[PAYMENTS], "other-lock")
    later = time.time_ns() // 1_000_000 + 3_600_000
    closed = await asyncio.gather(
        reaper.sweep(later),
        Reaper(app[ENGINE], app[RESERVATIONS], app[PAYMENTS], "third-lock").sweep(later),
    )
    assert sum(closed) == 1
    order = await buyer.call("GET", f"/api/orders/{order_id}", status=200)
    assert order["order"]["status"] == "expired"
    level = app[RESERVATIONS].level
    got = await level(sku)
    assert got is not None and (got.available, got.held) == (2, 0)
    assert (await buy(buyer, sku, qty=2))[0] == 201


async def test_running_reaper_expires_on_its_own(aiohttp_client: Any, settings: Settings) -> None:
    from dataclasses import replace

    from livecommerce.app import create_app

    client = await aiohttp_client(create_app(replace(settings, hold_ttl_s=10)))
    _seller, buyer, sku = await _shop(client, stock=1)
    _status, body = await buy(buyer, sku)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        order = await buyer.call("GET", f"/api/orders/{body['order']['id']}")
        if order["order"]["status"] == "expired":
            break
        await asyncio.sleep(0.5)
    assert order["order"]["status"] == "expired"
    got = await client.app[RESERVATIONS].level(sku)
    assert got is not None and got.available == 1


_signed = signed


async def test_webhooks_verified_once_and_in_any_order(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, sku = await _shop(client)
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    element = await buyer.call("POST", f"/api/orders/{order_id}/payment", {}, status=200)
    intent_id = element["payment"]["client_secret"].split("_secret_")[0]

    # Stripe tells us it failed (an out-of-date event): we look the intent up and see it is
    # merely waiting for a card, so nothing changes.
    def event(kind: str, event_id: str) -> dict[str, Any]:
        return {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": intent_id,
                    "object": "payment_intent",
                    "status": "requires_payment_method",
                    "amount": 4900,
                    "currency": "usd",
                    "metadata": {"order_id": str(order_id)},
                }
            },
        }

    payload, signature = _signed(
        event("payment_intent.processing", "evt_1"), settings.stripe_webhook_secret
    )
    response = await client.post(
        "/api/stripe/webhook", data=payload, headers={"Stripe-Signature": signature}
    )
    assert (await response.json())["result"] == "ignored"

    # Pay with a card, then deliver succeeded twice and a stale failure after it.
    await buyer.call(
        "POST",
        f"/api/orders/{order_id}/payment",
        {"payment_method_id": await card(settings, OK_CARD)},
        status=200,
    )
    for event_id, kind, expected in (
        ("evt_2", "payment_intent.succeeded", "paid"),
        ("evt_2", "payment_intent.succeeded", "duplicate"),
        ("evt_3", "payment_intent.payment_failed", "paid"),
    ):
        payload, signature = _signed(event(kind, event_id), settings.stripe_webhook_secret)
        response = await client.post(
            "/api/stripe/webhook", data=payload, headers={"Stripe-Signature": signature}
        )
        assert response.status == 200
        assert (await response.json())["result"] == expected
    assert await stock_on_hand(client, sku) == 4  # decremented once, not twice

    payload, _sig = _signed(event("payment_intent.succeeded", "evt_4"), "whsec_wrong")
    forged = await client.post(
        "/api/stripe/webhook", data=payload, headers={"Stripe-Signature": _sig}
    )
    assert forged.status == 400
    assert (await forged.json())["error"]["code"] == "bad_signature"
    unsigned = await client.post("/api/stripe/webhook", data=b"{}")
    assert unsigned.status == 400
    async with client.app[ENGINE].connect() as conn:
        stored = set((await conn.execute(sa.select(webhook_events.c.id))).scalars())
    assert stored == {"evt_1", "evt_2", "evt_3"}


async def test_webhook_from_the_emulator_marks_paid(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """localstripe signs and sends real webhooks; the synchronous path is off for this one."""
    async with httpx.AsyncClient(base_url=settings.stripe_api_base) as http:
        hook = await http.post(
            f"/_config/webhooks/{uuid.uuid4().hex}",
            data={
                "url": str(client.make_url("/api/stripe/webhook")),
                "secret": settings.stripe_webhook_secret,
            },
        )
        assert hook.status_code == 200
    _seller, buyer, sku = await _shop(client)
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    element = await buyer.call("POST", f"/api/orders/{order_id}/payment", {}, status=200)
    intent_id = element["payment"]["client_secret"].split("_secret_")[0]
    # Confirm at Stripe directly (as Stripe.js would), so only the webhook can tell us.
    gateway_client = stripe.StripeClient(
        settings.stripe_secret_key,
        base_addresses={"api": settings.stripe_api_base},
        http_client=stripe.HTTPXClient(),
    )
    pm = await card(settings, OK_CARD)
    await gateway_client.v1.payment_intents.update_async(intent_id, params={"payment_method": pm})
    await gateway_client.v1.payment_intents.confirm_async(intent_id)
    deadline = time.monotonic() + 20
    status = "reserved"
    while time.monotonic() < deadline and status != "paid":
        await asyncio.sleep(0.3)
        status = (await buyer.call("GET", f"/api/orders/{order_id}"))["order"]["status"]
    assert status == "paid"


async def test_refunds_partial_then_full_with_restock(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    seller, buyer, sku = await _shop(client, stock=5)
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    _status, body = await buy(buyer, sku, qty=2)
    order_id = body["order"]["id"]
    path = f"/api/orders/{order_id}/refunds"
    refused = await buyer.call("POST", path, {"amount_minor": 100}, status=403)
    assert refused["error"]["code"] == "forbidden"
    partial = await seller.call(
        "POST", path, {"amount_minor": 1000, "reason": "scuffed"}, status=201
    )
    assert partial["order"]["status"] == "paid"
    assert partial["order"]["refunded"]["amount"] == 1000
    too_much = await seller.call("POST", path, {"amount_minor": 9000}, status=422)
    assert too_much["error"]["refundable"] == 8800
    full = await seller.call("POST", path, {"restock_qty": 2}, status=201)
    assert full["order"]["status"] == "refunded"
    assert full["refund"]["amount"] == 8800
    assert await stock_on_hand(client, sku) == 5
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and level.available == 5
    await seller.call("POST", path, {"amount_minor": 1}, status=409)


async def test_redis_loss_rebuilds_available_from_sql(client: TestClient[Any, Any]) -> None:
    _seller, buyer, sku = await _shop(client, stock=4)
    _status, first = await buy(buyer, sku)
    redis = client.app[REDIS]
    namespace = client.app[RESERVATIONS]._ns
    keys = [k async for k in redis.scan_iter(f"{namespace}:*")]
    await redis.delete(*keys)
    status, second = await buy(buyer, sku, qty=2)
    assert status == 201, second
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (1, 3)
    # The first order's hold came back too: cancelling it releases its unit.
    await buyer.call("POST", f"/api/orders/{first['order']['id']}/cancel", status=200)
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (2, 2)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"sku_id": 1}, {}, 422, "invalid_input"),
        ({"sku_id": 0}, {"Idempotency-Key": "k"}, 422, "invalid_input"),
        ({"sku_id": 1, "qty": 11}, {"Idempotency-Key": "k"}, 422, "invalid_input"),
        ({"sku_id": 1, "qty": "two"}, {"Idempotency-Key": "k"}, 422, "invalid_input"),
        ({"sku_id": 999999}, {"Idempotency-Key": "k"}, 404, "not_found"),
    ],
)
async def test_bad_purchases(
    client: TestClient[Any, Any],
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    buyer = await sign_up(client, "buyer")
    response = await client.post("/api/purchases", json=body, headers={**buyer.headers, **headers})
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_order_visibility_and_own_products(client: TestClient[Any, Any]) -> None:
    seller, buyer, sku = await _shop(client)
    stranger = await sign_up(client, "stranger")
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    await stranger.call("GET", f"/api/orders/{order_id}", status=403)
    await stranger.call("POST", f"/api/orders/{order_id}/cancel", status=403)
    status, _own = await buy(seller, sku)
    assert status == 403
    cancelled = await buyer.call("POST", f"/api/orders/{order_id}/cancel", status=200)
    assert cancelled["order"]["status"] == "cancelled"
    await buyer.call("POST", f"/api/orders/{order_id}/cancel", status=409)
    assert (await client.get(f"/api/orders/{order_id}")).status == 401


async def _stream(creator: Account, product_ids: list[int]) -> int:
    stream = await creator.call(
        "POST", "/api/streams", {"title": "Drop", "lineup": product_ids}, status=201
    )
    return int(stream["stream"]["id"])


async def test_one_account_cannot_hold_all_the_stock(client: TestClient[Any, Any]) -> None:
    """Twelve units, one free account with no card: it holds five at most (the default)."""
    _seller, hoarder, sku = await _shop(client, stock=12)
    burst = await asyncio.gather(*(buy(hoarder, sku) for _ in range(12)))
    statuses = sorted(status for status, _ in burst)
    assert statuses == [201] * 5 + [409] * 7
    refused = next(body for status, body in burst if status == 409)["error"]
    assert refused["code"] == "too_many_unpaid"
    assert "pay for or cancel" in refused["message"]
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (7, 5)
    status, body = await buy(hoarder, sku, qty=6, key="big")
    assert (status, body["error"]["code"]) == (409, "too_many_unpaid")
    # Cancelling one makes room for one, and the refused key is still good.
    first = next(body for status, body in burst if status == 201)["order"]
    await hoarder.call("POST", f"/api/orders/{first['id']}/cancel", status=200)
    assert (await buy(hoarder, sku, key="big", qty=6))[0] == 409  # six is still too many
    assert (await buy(hoarder, sku, key="big"))[0] == 201


async def test_a_purchase_names_a_stream_that_sells_the_sku(client: TestClient[Any, Any]) -> None:
    creator, buyer, sku = await _shop(client, stock=20)
    other_creator = await sign_up(client, "other")
    mine = (await other_creator.call("POST", "/api/products", hoodie("OTHER-S", 5), status=201))[
        "product"
    ]
    async with client.app[ENGINE].connect() as conn:
        product_id = (
            await conn.execute(sa.select(skus.c.product_id).where(skus.c.id == sku))
        ).scalar_one()
    stream = await _stream(creator, [product_id])
    foreign = await _stream(other_creator, [mine["id"]])

    # Every refusal takes nothing and leaves the key usable.
    status, body = await buy(buyer, sku, key="k", stream_id=999_999)
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert "999999" in body["error"]["message"]
    status, body = await buy(buyer, sku, key="k", stream_id=foreign)
    assert (status, body["error"]["code"]) == (409, "not_in_lineup")
    level = await client.app[RESERVATIONS].level(sku)
    assert level is None or level.held == 0

    sale = await creator.call(
        "POST",
        f"/api/streams/{stream}/sales",
        {"sku_id": sku, "sale_price": 1000, "quantity": 5, "duration_s": 60},
        status=201,
    )
    assert sale["sale"]["sale_price"] == 1000
    status, body = await buy(buyer, sku, key="k")
    assert status == 201 and body["order"]["unit_price"]["amount"] == 4900  # no stream: list
    assert body["order"]["flash_sale"] is None
    status, body = await buy(buyer, sku, key="in-stream", stream_id=stream)
    assert status == 201 and body["order"]["unit_price"]["amount"] == 1000
    assert body["order"]["stream_id"] == stream

    # A lineup change is seen within the directory's bound (2 s).
    await creator.call("PATCH", f"/api/streams/{stream}", {"lineup": []}, status=200)
    await asyncio.sleep(2.1)
    status, body = await buy(buyer, sku, stream_id=stream)
    assert (status, body["error"]["code"]) == (409, "not_in_lineup")
    await creator.call(
        "PATCH", f"/api/streams/{stream}", {"lineup": [product_id], "status": "ended"}, status=200
    )
    await asyncio.sleep(2.1)
    status, body = await buy(buyer, sku, stream_id=stream)
    assert (status, body["error"]["code"]) == (409, "stream_ended")
    # A retry of a purchase that went through still gets its order.
    status, body = await buy(buyer, sku, key="in-stream", stream_id=stream)
    assert status == 200 and body["replayed"] and body["order"]["unit_price"]["amount"] == 1000
    # The stream's figures show only what was bought in it.
    figures = await creator.call("GET", f"/api/streams/{stream}/sales", status=200)
    assert sum(s["units"] for s in figures["sales"]["by_status"].values()) == 1
    other_figures = await other_creator.call("GET", f"/api/streams/{foreign}/sales", status=200)
    assert other_figures["sales"]["by_status"] == {}


async def test_a_buyer_is_never_charged_more_than_the_price_shown(
    client: TestClient[Any, Any],
) -> None:
    """A tap carries the unit price it was shown: a sale that ended (or a price raised) before
    the tap arrived refuses it, holding nothing; a lower price is taken."""
    creator, buyer, sku = await _shop(client, stock=10)
    async with client.app[ENGINE].connect() as conn:
        product_id = (
            await conn.execute(sa.select(skus.c.product_id).where(skus.c.id == sku))
        ).scalar_one()
    stream = await _stream(creator, [product_id])
    started = await creator.call(
        "POST",
        f"/api/streams/{stream}/sales",
        {"sku_id": sku, "sale_price": 1000, "quantity": 5, "duration_s": 60}
        | {"per_buyer_limit": 2},
        status=201,
    )
    status, body = await buy(buyer, sku, key="at-sale", stream_id=stream, unit_price_minor=1000)
    assert status == 201 and body["order"]["unit_price"]["amount"] == 1000, body
    # Shown the list price while the sale runs: the lower price is taken.
    status, body = await buy(buyer, sku, stream_id=stream, unit_price_minor=4900)
    assert status == 201 and body["order"]["unit_price"]["amount"] == 1000, body
    await creator.call(
        "DELETE", f"/api/streams/{stream}/sales/{started['sale']['sale_id']}", status=200
    )
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None
    held_before = level.held
    status, body = await buy(buyer, sku, key="late", stream_id=stream, unit_price_minor=1000)
    assert (status, body["error"]["code"]) == (409, "price_changed"), body
    assert body["error"]["unit_price_minor"] == 4900
    assert body["error"]["currency"] == "USD"
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and level.held == held_before  # nothing held
    mine = await buyer.call("GET", "/api/orders", status=200)
    assert len(mine["orders"]) == 2
    # The key is still good: the buyer agrees to the price now.
    status, body = await buy(buyer, sku, key="late", stream_id=stream, unit_price_minor=4900)
    assert status == 201 and body["order"]["unit_price"]["amount"] == 4900, body
    # A retry of the first tap answers its order, whatever price it names now.
    status, body = await buy(buyer, sku, key="at-sale", stream_id=stream, unit_price_minor=1)
    assert status == 200 and body["replayed"], body
    for bad in (-1, "1000", 1.5, 2**31):
        status, body = await buy(buyer, sku, stream_id=stream, unit_price_minor=bad)
        assert (status, body["error"]["code"]) == (422, "invalid_input"), (bad, body)


async def test_a_bad_row_fails_alone_and_cheaply_in_a_batch_of_orders(
    client: TestClient[Any, Any],
) -> None:
    from sqlalchemy import event

    from livecommerce.orders.orderwriter import OrderWriter

    seller, buyer, sku = await _shop(client, stock=100)
    engine = client.app[ENGINE]
    # Transactions that inserted orders (the reaper's reads run meanwhile; and a driver may
    # send one batch as several INSERT statements).
    sequence = itertools.count(1)
    begun: dict[int, int] = {}
    writing: set[int] = set()

    def began(conn: Any) -> None:
        begun[id(conn)] = next(sequence)

    def executed(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ORDERS"):
            writing.add(begun.get(id(conn), -1))

    event.listen(engine.sync_engine, "begin", began)
    event.listen(engine.sync_engine, "before_cursor_execute", executed)
    writer = OrderWriter(engine)

    def row(i: int, **changes: Any) -> dict[str, Any]:
        return {
            "buyer_id": buyer.id,
            "seller_id": seller.id,
            "sku_id": sku,
            "stream_id": None,
            "qty": 1,
            "unit_price_minor": 4900,
            "amount_minor": 4900,
            "currency": "USD",
            "sale_id": None,
            "hold_id": uuid.uuid4().hex,
            "idempotency_key": f"row-{i}",
            "expires_at": datetime.now(UTC),
            **changes,
        }

    rows = [row(i) for i in range(64)]
    rows[17] = row(17, stream_id=999_999)  # a foreign key that does not hold
    try:
        futures = [writer.insert(values) for values in rows]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await writer.close()
        event.remove(engine.sync_engine, "begin", began)
        event.remove(engine.sync_engine, "before_cursor_execute", executed)
    assert isinstance(outcomes[17], sa.exc.IntegrityError)
    assert all(not isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 17)
    assert len(writing) <= 2 * 6 + 1  # halving, not 64 one-by-one transactions


async def test_two_hundred_due_holds_come_back_within_one_sweep(
    aiohttp_client: Any, settings: Settings, viewers: list[Any]
) -> None:
    from dataclasses import replace

    from livecommerce.app import create_app
    from livecommerce.checkout.purchases import PURCHASES
    from tests.liveclient import Viewer

    roomy = replace(settings, max_unpaid_per_sku=200, max_unpaid_per_buyer=200)
    client = await aiohttp_client(create_app(roomy))
    seller, buyer, sku = await _shop(client, stock=200)
    async with client.app[ENGINE].connect() as conn:
        product_id = (
            await conn.execute(sa.select(skus.c.product_id).where(skus.c.id == sku))
        ).scalar_one()
    stream = await _stream(seller, [product_id])
    purchases = client.app[PURCHASES]
    await asyncio.gather(
        *(
            purchases.buy(
                buyer_id=buyer.id, sku_id=sku, qty=1, idempotency_key=f"h{i}", stream_id=stream
            )
            for i in range(200)
        )
    )
    watcher = Viewer()
    viewers.append(watcher)
    await watcher.connect(str(client.make_url("/")).rstrip("/"))
    await watcher.call("join", {"stream_id": stream})
    reservations = client.app[RESERVATIONS]
    assert (await reservations.level(sku)) == StockLevel(available=0, held=200, sold=0)

    # All 200 fall due at the same moment.
    now = time.time_ns() // 1_000_000
    holds_key = f"{roomy.redis_namespace}:holds:{{sku{sku}}}"
    members = await client.app[REDIS].zrange(holds_key, 0, -1)
    assert len(members) == 200
    await client.app[REDIS].zadd(holds_key, dict.fromkeys(members, now), xx=True)
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(
            orders.update().where(orders.c.sku_id == sku).values(expires_at=datetime.now(UTC))
        )
    started = time.monotonic()
    while time.monotonic() - started < 10:
        level = await reservations.level(sku)
        if level is not None and level.available == 200:
            break
        await asyncio.sleep(0.02)
    took = time.monotonic() - started
    assert level == StockLevel(available=200, held=0, sold=0)
    assert took <= roomy.reaper_interval_s + 1, took
    async with client.app[ENGINE].connect() as conn:
        statuses = (
            await conn.execute(sa.select(orders.c.status).where(orders.c.sku_id == sku))
        ).scalars()
        assert set(statuses) == {"expired"}
    pushed = await watcher.wait_for("stock:changed", available=200)
    assert pushed["sku_id"] == sku


async def test_a_cancelled_orders_units_are_back_at_once(client: TestClient[Any, Any]) -> None:
    seller, buyer, sku = await _shop(client, stock=3)
    async with client.app[ENGINE].connect() as conn:
        product_id = (
            await conn.execute(sa.select(skus.c.product_id).where(skus.c.id == sku))
        ).scalar_one()
    stream = await _stream(seller, [product_id])
    _status, body = await buy(buyer, sku, qty=3, stream_id=stream)
    other = await sign_up(client, "other")
    assert (await buy(other, sku, stream_id=stream))[0] == 409
    await buyer.call("POST", f"/api/orders/{body['order']['id']}/cancel", status=200)
    # When the cancel is answered, the units are already back on the shelf.
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (3, 0)
    assert (await buy(other, sku, qty=3, stream_id=stream))[0] == 201


async def test_unpaid_bounds_survive_a_redis_loss(client: TestClient[Any, Any]) -> None:
    seller, buyer, first = await _shop(client, stock=20)
    others = [
        (await seller.call("POST", "/api/products", hoodie(f"B-{i}-{uuid.uuid4().hex[:4]}", 20)))[
            "product"
        ]["variants"][0]["id"]
        for i in range(2)
    ]
    for sku in (first, others[0]):
        assert (await buy(buyer, sku, qty=5))[0] == 201  # ten unpaid: the default bound in all
    redis = client.app[REDIS]
    namespace = client.app[RESERVATIONS]._ns
    await redis.delete(*[k async for k in redis.scan_iter(f"{namespace}:*")])
    status, body = await buy(buyer, others[1])  # its counters and the buyer's total: from SQL
    assert (status, body["error"]["code"]) == (409, "too_many_unpaid")
    status, body = await buy(buyer, first)
    assert (status, body["error"]["code"]) == (409, "too_many_unpaid")
    level = await client.app[RESERVATIONS].level(first)
    assert level is not None and (level.available, level.held) == (15, 5)


async def test_an_order_that_cannot_be_written_leaves_its_key_usable(
    client: TestClient[Any, Any],
) -> None:
    """The stream goes away between the (cached) check and the write: a 409, not a 500, the
    hold goes back, and the same Idempotency-Key works at once."""
    seller, buyer, sku = await _shop(client, stock=3)
    async with client.app[ENGINE].connect() as conn:
        product_id = (
            await conn.execute(sa.select(skus.c.product_id).where(skus.c.id == sku))
        ).scalar_one()
    stream = await _stream(seller, [product_id])
    from livecommerce.checkout.purchases import PURCHASES
    from livecommerce.platform.db.tables import streams

    await client.app[PURCHASES].streams.facts(stream)  # cached as selling the product
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(streams.delete().where(streams.c.id == stream))
    status, body = await buy(buyer, sku, key="once", stream_id=stream)
    assert (status, body["error"]["code"]) == (409, "conflict")
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (3, 0)
    status, body = await buy(buyer, sku, key="once")
    assert status == 201 and not body["replayed"]


async def test_a_buyer_is_ready_to_buy_before_their_first_tap(
    client: TestClient[Any, Any],
) -> None:
    """A signed-in buyer's unpaid total is seeded when this process first reads their token,
    from what SQL holds, so their first buy reads no SQL for it (and a lost set comes back)."""
    seller, buyer, first = await _shop(client, stock=20)
    second = (await seller.call("POST", "/api/products", hoodie(f"W-{uuid.uuid4().hex[:4]}", 20)))[
        "product"
    ]["variants"][0]["id"]
    for sku in (first, second):
        assert (await buy(buyer, sku, qty=5))[0] == 201  # ten unpaid: the default bound in all
    redis, reservations, tokens = client.app[REDIS], client.app[RESERVATIONS], client.app[TOKENS]
    totals = reservations._totals
    key = totals.key(buyer.id)
    held = sorted(await redis.zrange(key, 0, -1))
    assert len(held) == 3 and held[-1] == "~:0"  # two holds of five, and "complete"

    async def seeded(account: Account) -> list[str]:
        started = time.monotonic()
        while time.monotonic() - started < 5:
            members = await redis.zrange(totals.key(account.id), 0, -1)
            if members:
                return sorted(members)
            await asyncio.sleep(0.01)
        raise AssertionError("the buyer's total was not seeded")

    await redis.delete(key)  # Redis lost it
    tokens.forget(buyer.token)
    warmed = totals.warmed
    await buyer.call("GET", "/api/me", status=200)  # this process reads the token again
    assert await seeded(buyer) == held
    assert totals.warmed == warmed + 1
    assert 500_000 < await redis.pttl(key) <= 600_000
    # Still bounded: the eleventh unit is refused from the seeded set.
    status, body = await buy(buyer, first)
    assert (status, body["error"]["code"]) == (409, "too_many_unpaid")

    newcomer = await sign_up(client, "newcomer")
    tokens.forget(newcomer.token)
    await newcomer.call("GET", "/api/me", status=200)
    assert await seeded(newcomer) == ["~:0"]  # nothing held, and known to be complete
    assert totals.warmed == warmed + 2
    # A token read again while its buyer's set is there seeds nothing.
    tokens.forget(newcomer.token)
    await newcomer.call("GET", "/api/me", status=200)
    assert (await buy(newcomer, first, qty=2))[0] == 201
    assert totals.warmed == warmed + 2
    assert len(await redis.zrange(totals.key(newcomer.id), 0, -1)) == 2


async def test_a_batch_of_orders_answers_each_as_the_database_holds_it(
    client: TestClient[Any, Any],
) -> None:
    """The group commit's orders (on PostgreSQL built from the values sent and the ids given
    back) are field for field what a read of each row finds."""
    from livecommerce.orders.orders import get_order
    from livecommerce.orders.orderwriter import OrderWriter

    seller, buyer, sku = await _shop(client, stock=100)
    engine = client.app[ENGINE]
    writer = OrderWriter(engine)
    address = {"name": "Ada Byron", "line1": "1 Main St", "city": "Springfield", "country": "US"}
    rows = [
        {
            "buyer_id": buyer.id,
            "seller_id": seller.id,
            "sku_id": sku,
            "stream_id": None,
            "qty": 1 + i % 3,
            "unit_price_minor": 4900,
            "amount_minor": 4900 * (1 + i % 3) + 500,
            "shipping_minor": 500,
            "tax_minor": 0,
            "shipping_address": address if i % 2 else None,
            "currency": "USD",
            "item_name": f"Hoodie ({'SML'[i % 3]})",
            "sale_id": "sale-1" if i % 4 == 0 else None,
            "hold_id": uuid.uuid4().hex,
            "idempotency_key": f"batch-{i}",
            "expires_at": datetime.now(UTC),
        }
        for i in range(12)
    ]
    try:
        written = await asyncio.gather(*(writer.insert(values) for values in rows))
    finally:
        await writer.close()
    async with engine.connect() as conn:
        for values, order in zip(rows, written, strict=True):
            assert order == await get_order(conn, order.id)
            assert (order.hold_id, order.qty) == (values["hold_id"], values["qty"])
    assert len({order.id for order in written}) == 12

"""The purchase path over HTTP, against real Redis, SQL and localstripe (a Stripe emulator)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import stripe
from aiohttp.test_utils import TestClient

from livecommerce.appkeys import ENGINE, REDIS, RESERVATIONS
from livecommerce.checkout.expiry import Reaper
from livecommerce.config import Settings
from livecommerce.db.tables import webhook_events
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
    from livecommerce.appkeys import PAYMENTS

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

"""Charges Stripe refuses (a card or customer gone, an amount below the minimum) are clear 4xx
answers: the order fails and its units go back, or the buyer is asked for another card."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import orders, users
from tests.conftest import Account, hoodie, sign_up
from tests.liveclient import Viewer
from tests.shopping import OK_CARD, buy, card, open_shop, stock_on_hand


async def _delete_at_stripe(settings: Settings, path: str) -> None:
    """What deleting a card or a customer in Stripe's dashboard does."""
    async with httpx.AsyncClient(base_url=settings.stripe_api_base) as http:
        answer = await http.delete(path, auth=(settings.stripe_secret_key, ""))
        assert answer.status_code == 200, answer.text


async def _saved(client: TestClient[Any, Any], buyer: Account) -> tuple[str | None, str | None]:
    async with client.app[ENGINE].connect() as conn:
        row = (
            await conn.execute(
                sa.select(users.c.stripe_customer_id, users.c.default_payment_method_id).where(
                    users.c.id == buyer.id
                )
            )
        ).one()
    return row.stripe_customer_id, row.default_payment_method_id


async def _on_shelf(client: TestClient[Any, Any], sku: int, units: int) -> None:
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (units, 0)
    assert await stock_on_hand(client, sku) == units


async def test_a_deleted_saved_card_fails_the_one_tap_order_and_returns_the_stock(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, sku = await open_shop(client, stock=2)
    pm = await card(settings, OK_CARD)
    await buyer.call("POST", "/api/cards", {"payment_method_id": pm}, status=201)
    await _delete_at_stripe(settings, f"/v1/payment_methods/{pm}")
    status, body = await buy(buyer, sku)
    assert status == 402, body
    assert body["error"]["code"] == "card_unusable"
    assert body["error"]["order_status"] == "failed"
    order = await buyer.call("GET", f"/api/orders/{body['error']['order_id']}", status=200)
    assert order["order"]["status"] == "failed"
    assert order["order"]["failure"]["code"] == "card_unusable"
    await _on_shelf(client, sku, 2)
    assert (await buyer.call("GET", "/api/cards", status=200))["card"] is None
    # The next buy asks for a card (Payment Element), which pays.
    status, body = await buy(buyer, sku)
    assert status == 201 and body["order"]["status"] == "reserved"
    paid = await buyer.call(
        "POST",
        f"/api/orders/{body['order']['id']}/payment",
        {"payment_method_id": await card(settings, OK_CARD)},
        status=200,
    )
    assert paid["order"]["status"] == "paid"


async def test_a_deleted_customer_fails_the_socketio_buy_with_an_error_ack(
    client: TestClient[Any, Any], settings: Settings, viewers: list[Viewer]
) -> None:
    _seller, buyer, sku = await open_shop(client, stock=1)
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    customer, _pm = await _saved(client, buyer)
    await _delete_at_stripe(settings, f"/v1/customers/{customer}")
    fan = Viewer()
    viewers.append(fan)
    await fan.connect(str(client.make_url("/")).rstrip("/"), buyer.token)
    ack = await fan.call("buy", {"sku_id": sku, "idempotency_key": uuid.uuid4().hex})
    assert "ok" not in ack and ack["error"]["code"] == "card_unusable", ack
    assert ack["error"]["order_status"] == "failed"
    await _on_shelf(client, sku, 1)
    assert await _saved(client, buyer) == (None, None)  # a new customer is made next time
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    new_customer, _pm = await _saved(client, buyer)
    assert new_customer is not None and new_customer != customer
    paid = await fan.call("buy", {"sku_id": sku, "idempotency_key": uuid.uuid4().hex})
    assert paid["ok"] and paid["order"]["status"] == "paid", paid


async def test_a_card_that_does_not_exist_asks_for_another(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """A card chosen now that Stripe does not know: the order stays reserved for another."""
    _seller, buyer, sku = await open_shop(client, stock=1)
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    gone = await card(settings, OK_CARD)
    await _delete_at_stripe(settings, f"/v1/payment_methods/{gone}")
    refused = await buyer.call(
        "POST", f"/api/orders/{order_id}/payment", {"payment_method_id": gone}, status=402
    )
    assert refused["error"]["code"] == "card_unusable"
    assert refused["error"]["order_status"] == "reserved"
    paid = await buyer.call(
        "POST",
        f"/api/orders/{order_id}/payment",
        {"payment_method_id": await card(settings, OK_CARD)},
        status=200,
    )
    assert paid["order"]["status"] == "paid"


async def test_an_amount_below_stripes_minimum_fails_the_order(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, sku = await open_shop(client, stock=2, price=10)  # USD 0.10
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    status, body = await buy(buyer, sku)
    assert status == 422, body
    assert body["error"]["code"] == "amount_too_small"
    assert body["error"]["minimum"] == {"amount": 50, "currency": "USD"}
    assert body["error"]["order_status"] == "failed"
    await _on_shelf(client, sku, 2)
    # Without a saved card, asking for the Payment Element says the same.
    other = await sign_up(client, "other")
    status, body = await buy(other, sku)
    assert status == 201 and body["order"]["status"] == "reserved"
    refused = await other.call("POST", f"/api/orders/{body['order']['id']}/payment", {}, status=422)
    assert refused["error"]["code"] == "amount_too_small"
    await _on_shelf(client, sku, 2)


async def test_flash_sales_below_the_minimum_charge_are_refused(
    client: TestClient[Any, Any],
) -> None:
    creator = await sign_up(client, "creator")
    product = (
        await creator.call(
            "POST", "/api/products", hoodie(f"F-{uuid.uuid4().hex[:6]}", 5), status=201
        )
    )["product"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product["id"]]}, status=201
        )
    )["stream"]
    terms = {"sku_id": product["variants"][0]["id"], "quantity": 2, "duration_s": 10}
    path = f"/api/streams/{stream['id']}/sales"
    for price in (0, 49):
        refused = await creator.call("POST", path, {**terms, "sale_price": price}, status=422)
        assert refused["error"]["code"] == "amount_too_small"
        assert refused["error"]["minimum"] == {"amount": 50, "currency": "USD"}
    started = await creator.call("POST", path, {**terms, "sale_price": 50}, status=201)
    assert started["sale"]["sale_price"] == 50


async def test_a_deleted_customer_can_save_a_card_again(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, _sku = await open_shop(client, stock=1)
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    customer, _pm = await _saved(client, buyer)
    await _delete_at_stripe(settings, f"/v1/customers/{customer}")
    setup = await buyer.call("POST", "/api/cards/setup", status=201)
    assert setup["client_secret"]
    saved = await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    assert saved["card"]["label"].endswith("4242")
    new_customer, _pm = await _saved(client, buyer)
    assert new_customer not in (None, customer)


async def test_two_payments_racing_for_one_order_charge_it_once(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """Two tabs pay the same order with two cards at once: the second charge is given back."""
    _seller, buyer, sku = await open_shop(client, stock=1)
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    cards = [await card(settings, OK_CARD), await card(settings, OK_CARD)]
    path = f"/api/orders/{order_id}/payment"
    answers = await asyncio.gather(
        *(
            buyer.client.post(path, json={"payment_method_id": pm}, headers=buyer.headers)
            for pm in cards
        )
    )
    bodies = [await a.json() for a in answers]
    assert [a.status for a in answers] == [200, 200], bodies
    order = await buyer.call("GET", f"/api/orders/{order_id}", status=200)
    assert order["order"]["status"] == "paid"
    await _on_shelf_sold(client, sku)
    # At Stripe: whatever was charged beyond the order's own intent was refunded in full.
    async with client.app[ENGINE].connect() as conn:
        hold_id = (
            await conn.execute(sa.select(orders.c.hold_id).where(orders.c.id == order_id))
        ).scalar_one()
    ours = [i for i in await _all_intents(settings) if i["metadata"].get("hold_id") == hold_id]
    assert len(ours) == 2 and all(i["status"] == "succeeded" for i in ours)
    kept = sum(i["amount"] - sum(c["amount_refunded"] for c in i["charges"]["data"]) for i in ours)
    assert kept == 4900, ours


async def _all_intents(settings: Settings) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    async with httpx.AsyncClient(base_url=settings.stripe_api_base) as http:
        while True:
            page = (
                await http.get(
                    "/v1/payment_intents", params=params, auth=(settings.stripe_secret_key, "")
                )
            ).json()
            found += page["data"]
            if not page["has_more"]:
                return found
            params["starting_after"] = page["data"][-1]["id"]


async def _on_shelf_sold(client: TestClient[Any, Any], sku: int) -> None:
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held, level.sold) == (0, 0, 1)
    assert await stock_on_hand(client, sku) == 0


async def test_an_order_whose_intent_stripe_lost_can_still_be_cancelled(
    client: TestClient[Any, Any],
) -> None:
    """As after the emulator's store was lost: no money can have moved on an unknown intent."""
    _seller, buyer, sku = await open_shop(client, stock=1)
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(
            orders.update()
            .where(orders.c.id == order_id)
            .values(payment_intent_id=f"pi_lost{uuid.uuid4().hex[:12]}")
        )
    synced = await buyer.call("POST", f"/api/orders/{order_id}/sync", status=409)
    assert synced["error"]["code"] == "unknown_payment_intent"
    cancelled = await buyer.call("POST", f"/api/orders/{order_id}/cancel", status=200)
    assert cancelled["order"]["status"] == "cancelled"
    await _on_shelf(client, sku, 1)


async def test_a_double_tap_on_pay_answers_paid_twice(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """Both taps confirm the same intent; the one Stripe refuses as already paid says paid."""
    _seller, buyer, sku = await open_shop(client, stock=1)
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    path = f"/api/orders/{order_id}/payment"
    await buyer.call("POST", path, {}, status=200)  # the Payment Element's intent
    pm = await card(settings, OK_CARD)
    answers = await asyncio.gather(
        *(
            buyer.client.post(path, json={"payment_method_id": pm}, headers=buyer.headers)
            for _ in range(3)
        )
    )
    bodies = [await a.json() for a in answers]
    assert [a.status for a in answers] == [200, 200, 200], bodies
    assert all(b["order"]["status"] == "paid" for b in bodies)
    await _on_shelf_sold(client, sku)

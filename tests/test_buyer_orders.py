"""A buyer's side of checkout: a card becomes the one-tap card only once it has paid, a held
order is finished or cancelled, the order history, and saved cards (list, replace, remove).
Against real Redis, SQL and localstripe; every buyer sees only their own orders and cards."""

from __future__ import annotations

from typing import Any

import httpx
from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.inventory.reservations import RESERVATIONS
from tests.conftest import sign_up
from tests.shopping import DECLINED_CARD, OK_CARD, THREE_DS_CARD, buy, card, open_shop


async def test_a_declined_card_is_not_kept_and_the_held_order_takes_another(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, sku = await open_shop(client, stock=1)
    status, body = await buy(buyer, sku, pay_with_saved_card=False)
    assert status == 201 and body["order"]["status"] == "reserved"
    order = body["order"]
    path = f"/api/orders/{order['id']}/payment"
    declined = await buyer.call(
        "POST",
        path,
        {"payment_method_id": await card(settings, DECLINED_CARD), "save_card": True},
        status=402,
    )
    error = declined["error"]
    assert error["code"] == "payment_failed" and error["declined"] is True
    assert error["order_status"] == "reserved"
    # Not the one-tap card, and the unit is still held for this order.
    assert (await buyer.call("GET", "/api/cards", status=200))["card"] is None
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (0, 1)
    again = await buyer.call("GET", f"/api/orders/{order['id']}", status=200)
    assert again["order"]["status"] == "reserved"
    assert again["order"]["expires_at"] == order["expires_at"]  # the same hold
    paid = await buyer.call(
        "POST",
        path,
        {"payment_method_id": await card(settings, OK_CARD), "save_card": True},
        status=200,
    )
    assert paid["order"]["status"] == "paid" and paid["order"]["id"] == order["id"]
    saved = (await buyer.call("GET", "/api/cards", status=200))["card"]
    assert saved["label"] == "Visa •••• 4242"


async def test_a_card_kept_after_3d_secure_only_once_it_has_paid(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, sku = await open_shop(client)
    _status, body = await buy(buyer, sku, pay_with_saved_card=False)
    order_id = body["order"]["id"]
    result = await buyer.call(
        "POST",
        f"/api/orders/{order_id}/payment",
        {"payment_method_id": await card(settings, THREE_DS_CARD), "save_card": True},
        status=200,
    )
    assert result["payment"]["status"] == "requires_action"
    assert (await buyer.call("GET", "/api/cards"))["card"] is None  # not paid yet
    secret = result["payment"]["client_secret"]
    async with httpx.AsyncClient(base_url=settings.stripe_api_base) as http:
        answer = await http.post(
            f"/v1/payment_intents/{secret.split('_secret_')[0]}/_authenticate",
            data={"client_secret": secret, "success": "true"},
            auth=(settings.stripe_secret_key, ""),
        )
        assert answer.status_code == 200
    synced = await buyer.call("POST", f"/api/orders/{order_id}/sync", status=200)
    assert synced["order"]["status"] == "paid"
    assert (await buyer.call("GET", "/api/cards"))["card"]["label"].endswith("3184")


async def test_a_held_order_is_found_again_and_cancelled_at_once(
    client: TestClient[Any, Any],
) -> None:
    _seller, buyer, sku = await open_shop(client, stock=1)
    _status, body = await buy(buyer, sku, pay_with_saved_card=False)
    order_id = body["order"]["id"]
    held = await buyer.call("GET", f"/api/orders?status=reserved&sku_id={sku}", status=200)
    assert [o["id"] for o in held["orders"]] == [order_id]
    assert held["orders"][0]["item"]["title"]
    assert held["next_offset"] is None
    stranger = await sign_up(client, "stranger")
    assert (await stranger.call("GET", f"/api/orders?sku_id={sku}", status=200))["orders"] == []
    await stranger.call("POST", f"/api/orders/{order_id}/cancel", status=403)
    cancelled = await buyer.call("POST", f"/api/orders/{order_id}/cancel", status=200)
    assert cancelled["order"]["status"] == "cancelled"
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (1, 0)


async def test_order_history_pages_and_only_the_buyers_own(client: TestClient[Any, Any]) -> None:
    _seller, buyer, sku = await open_shop(client, stock=5)
    ids = []
    for _ in range(3):
        _status, body = await buy(buyer, sku, pay_with_saved_card=False)
        ids.append(body["order"]["id"])
    first = await buyer.call("GET", "/api/orders?limit=2", status=200)
    assert [o["id"] for o in first["orders"]] == ids[::-1][:2]
    assert first["next_offset"] == 2
    rest = await buyer.call("GET", "/api/orders?limit=2&offset=2", status=200)
    assert [o["id"] for o in rest["orders"]] == [ids[0]] and rest["next_offset"] is None
    one = await buyer.call("GET", f"/api/orders/{ids[0]}", status=200)
    assert one["order"]["item"]["product_id"] and one["order"]["status"] == "reserved"
    other = await sign_up(client, "other")
    assert (await other.call("GET", "/api/orders", status=200))["orders"] == []
    assert (await other.call("GET", f"/api/orders/{ids[0]}", status=403))["error"]["code"]
    for bad in ("999999", "0", "abc", "1e3", "99999999999999999999", "-1"):
        response = await buyer.client.get(f"/api/orders/{bad}", headers=buyer.headers)
        assert response.status == 404, bad
        assert (await response.json())["error"]["code"] == "not_found"
    for query in ("status=nope", "limit=0", "limit=9999", "offset=-1", "sku_id=x"):
        response = await buyer.client.get(f"/api/orders?{query}", headers=buyer.headers)
        assert response.status == 422, query
    assert (await client.get("/api/orders")).status == 401


async def test_saved_cards_listed_replaced_and_removed_by_their_owner_only(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    buyer = await sign_up(client, "buyer")
    other = await sign_up(client, "other")
    assert (await buyer.call("GET", "/api/cards?list=1", status=200))["cards"] == []
    first = await card(settings, OK_CARD)
    await buyer.call("POST", "/api/cards", {"payment_method_id": first}, status=201)
    listed = (await buyer.call("GET", "/api/cards?list=1", status=200))["cards"]
    assert [(c["id"], c["last4"], c["one_tap"]) for c in listed] == [(first, "4242", True)]
    assert listed[0]["exp_month"] == 12 and listed[0]["exp_year"] == 2034
    # Someone else's card is not found, whatever they try.
    assert (await other.call("GET", "/api/cards?list=1", status=200))["cards"] == []
    await other.call("DELETE", f"/api/cards/{first}", status=404)
    theirs = await card(settings, OK_CARD)
    await other.call("PUT", f"/api/cards/{first}", {"payment_method_id": theirs}, status=404)
    for bad in ("nope", "pm_", "pm_x%2F..", "x" * 300, "pm_doesnotexist"):
        response = await buyer.client.delete(f"/api/cards/{bad}", headers=buyer.headers)
        assert response.status == 404, bad
        assert (await response.json())["error"]["code"] == "not_found"
    # Replace: the new card takes the old one's place as the one-tap card.
    second = await card(settings, THREE_DS_CARD)
    replaced = await buyer.call(
        "PUT", f"/api/cards/{first}", {"payment_method_id": second}, status=200
    )
    assert replaced["card"]["label"].endswith("3184")
    assert [(c["id"], c["one_tap"]) for c in replaced["cards"]] == [(second, True)]
    assert (await buyer.call("GET", "/api/cards"))["card"]["id"] == second
    # Remove: no one-tap card any more; the next buy only holds.
    left = await buyer.call("DELETE", f"/api/cards/{second}", status=200)
    assert left["cards"] == []
    assert (await buyer.call("GET", "/api/cards"))["card"] is None
    await buyer.call("DELETE", f"/api/cards/{second}", status=404)

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.inventory.reservations import RESERVATIONS
from tests.conftest import hoodie, sign_up
from tests.shopping import buy, open_shop, stock_on_hand


async def test_create_read_and_list_products(client: TestClient[Any, Any]) -> None:
    ava = await sign_up(client, "ava")
    body = hoodie()
    body["variants"].append(
        {
            "sku": "HOOD-L",
            "price_minor": 5200,
            "currency": "USD",
            "stock_on_hand": 3,
            "attributes": {"size": "L"},
        }
    )
    created = (await ava.call("POST", "/api/products", body, status=201))["product"]
    assert created["owner_id"] == ava.id
    assert [v["sku"] for v in created["variants"]] == ["HOOD-M", "HOOD-L"]
    assert created["variants"][1]["price"] == {"amount": 5200, "currency": "USD"}

    response = await client.get(f"/api/products/{created['id']}")
    assert (await response.json())["product"] == created
    listing = await (await client.get(f"/api/products?owner={ava.id}")).json()
    assert [p["id"] for p in listing["products"]] == [created["id"]]


async def test_only_the_owner_edits_and_sku_codes_are_unique(
    client: TestClient[Any, Any],
) -> None:
    ava = await sign_up(client, "ava")
    bob = await sign_up(client, "bob")
    product = (await ava.call("POST", "/api/products", hoodie(), status=201))["product"]
    path = f"/api/products/{product['id']}"

    body = await bob.call("PATCH", path, {"title": "Mine now"}, status=403)
    assert body["error"]["code"] == "forbidden"
    body = await client.patch(path, json={"title": "anon"})
    assert body.status == 401

    changed = await ava.call(
        "PATCH",
        path,
        {
            "title": "Cosy hoodie",
            "variants": [
                {"sku": "HOOD-M", "stock_on_hand": 7, "price_minor": 3900},
                {"sku": "HOOD-XL", "price_minor": 5500, "currency": "USD", "stock_on_hand": 2},
            ],
        },
        status=200,
    )
    variants = {v["sku"]: v for v in changed["product"]["variants"]}
    assert changed["product"]["title"] == "Cosy hoodie"
    assert variants["HOOD-M"]["stock_on_hand"] == 7
    assert variants["HOOD-M"]["price"]["amount"] == 3900
    assert variants["HOOD-XL"]["stock_on_hand"] == 2

    taken = await bob.call("POST", "/api/products", hoodie("HOOD-M"), status=409)
    assert taken["error"]["code"] == "sku_taken"

    # A new variant without a price is refused, and nothing of the patch lands.
    body = await ava.call(
        "PATCH", path, {"title": "half", "variants": [{"sku": "NEW-1"}]}, status=422
    )
    assert "NEW-1" in body["error"]["message"]
    again = await (await client.get(path)).json()
    assert again["product"]["title"] == "Cosy hoodie"


async def test_inactive_products_are_hidden_from_others(client: TestClient[Any, Any]) -> None:
    ava = await sign_up(client, "ava")
    product = (await ava.call("POST", "/api/products", hoodie(), status=201))["product"]
    path = f"/api/products/{product['id']}"
    await ava.call("PATCH", path, {"active": False}, status=200)
    assert (await client.get(path)).status == 404
    assert (await ava.call("GET", path, status=200))["product"]["active"] is False
    listing = await (await client.get("/api/products")).json()
    assert product["id"] not in [p["id"] for p in listing["products"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variants": []}, "variants"),
        ({"variants": [{"sku": "A", "price_minor": -1, "currency": "USD"}]}, "price_minor"),
        ({"variants": [{"sku": "A", "price_minor": 1.5, "currency": "USD"}]}, "price_minor"),
        ({"variants": [{"sku": "A", "price_minor": 100, "currency": "usd"}]}, "currency"),
        ({"variants": [{"sku": "bad sku!", "price_minor": 100, "currency": "USD"}]}, "sku"),
        (
            {
                "variants": [
                    {"sku": "A", "price_minor": 100, "currency": "USD", "stock_on_hand": -3}
                ]
            },
            "stock_on_hand",
        ),
        ({"image_url": "javascript:alert(1)"}, "image_url"),
        ({"title": ""}, "title"),
    ],
)
async def test_bad_products_are_refused(
    client: TestClient[Any, Any], change: dict[str, Any], field: str
) -> None:
    ava = await sign_up(client, "ava")
    body = {**hoodie(), **change}
    error = (await ava.call("POST", "/api/products", body, status=422))["error"]
    assert any(field in f["field"] for f in error["fields"]), error


async def test_bad_ids_and_queries(client: TestClient[Any, Any]) -> None:
    for path in ("/api/products/0", "/api/products/99999999999999999999", "/api/products/7"):
        response = await client.get(path)
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    assert (await client.get("/api/products/abc")).status == 404
    for q in ("limit=0", "limit=abc", "offset=-1", "owner=x", "limit=100000"):
        response = await client.get(f"/api/products?{q}")
        assert response.status == 422, q
    response = await client.delete("/api/products")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"


async def test_stock_on_hand_cannot_drop_below_what_buyers_hold(
    client: TestClient[Any, Any],
) -> None:
    """The live counter follows a change of stock on hand, or the change is undone in SQL."""
    seller, buyer, sku = await open_shop(client, stock=5)
    assert (await buy(buyer, sku, qty=3))[0] == 201  # reserved, unpaid: 2 free
    product = (await seller.call("GET", "/api/products", status=200))["products"][0]
    path = f"/api/products/{product['id']}"
    code = product["variants"][0]["sku"]

    refused = await seller.call(
        "PATCH", path, {"variants": [{"sku": code, "stock_on_hand": 1}]}, status=409
    )
    assert refused["error"]["code"] == "conflict"
    assert "held by buyers" in refused["error"]["message"]
    assert await stock_on_hand(client, sku) == 5
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (2, 3)

    await seller.call("PATCH", path, {"variants": [{"sku": code, "stock_on_hand": 3}]}, status=200)
    assert await stock_on_hand(client, sku) == 3
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (0, 3)

"""The buyer's side of the live card over the wire: the variant it names and offers, the flash
sale's own units pushed live down to zero, the order named with its variant, and the show's bag."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from tests.conftest import Account, accept_invitation, sign_up
from tests.liveclient import Viewer
from tests.shopping import OK_CARD, buy, card


def everyday_hoodie(stock: dict[str, int]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    return {
        "title": "Everyday Hoodie",
        "description": "Heavyweight cotton.",
        "image_url": "https://example.com/hoodie.jpg",
        "variants": [
            {
                "sku": f"HOOD-{size}-{tag}",
                "price_minor": 4900,
                "currency": "USD",
                "stock_on_hand": units,
                "attributes": {"size": size},
            }
            for size, units in stock.items()
        ],
    }


async def _show(
    client: TestClient[Any, Any], settings: Settings, *products: dict[str, Any]
) -> tuple[Account, Account, list[Account], int, list[dict[str, Any]]]:
    """A creator's show with ``products`` in its lineup, a moderator, and two buyers with a
    saved card; returns (creator, moderator, buyers, stream id, products)."""
    creator = await sign_up(client, "creator")
    moderator = await sign_up(client, "moderator")
    made = [
        (await creator.call("POST", "/api/products", p, status=201))["product"] for p in products
    ]
    stream_id = (
        await creator.call(
            "POST",
            "/api/streams",
            {"title": "Drop", "lineup": [p["id"] for p in made]},
            status=201,
        )
    )["stream"]["id"]
    await creator.call(
        "POST", f"/api/streams/{stream_id}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    buyers = [await sign_up(client, f"buyer{i}") for i in range(2)]
    for buyer in buyers:
        pm = await card(settings, OK_CARD)
        await buyer.call("POST", "/api/cards", {"payment_method_id": pm}, status=201)
    return creator, moderator, buyers, stream_id, made


async def _viewer(client: TestClient[Any, Any], viewers: list[Viewer], token: str) -> Viewer:
    viewer = Viewer()
    viewers.append(viewer)
    await viewer.connect(str(client.make_url("/")).rstrip("/"), token)
    return viewer


async def test_the_pinned_card_names_its_variant_offers_the_others_and_the_order_names_it(
    client: TestClient[Any, Any], viewers: list[Viewer], settings: Settings
) -> None:
    _, moderator, (buyer, _), stream_id, (product,) = await _show(
        client, settings, everyday_hoodie({"S": 3, "M": 40, "L": 0})
    )
    small, medium, large = (v["id"] for v in product["variants"])
    assert [v["label"] for v in product["variants"]] == ["S", "M", "L"]
    mod = await _viewer(client, viewers, moderator.token)
    fan = await _viewer(client, viewers, buyer.token)
    room = {"stream_id": stream_id}
    for v in (mod, fan):
        assert (await v.call("join", room))["ok"]
    pinned = await mod.call("pin", {**room, "product_id": product["id"], "sku_id": medium})
    assert pinned["pinned"]["title"] == "Everyday Hoodie"
    assert pinned["pinned"]["variant"] == "M"
    heard = await fan.wait_for("product:pinned")
    assert heard["product"]["variant"] == "M"
    assert [(v["sku_id"], v["label"], v["attributes"]) for v in heard["product"]["variants"]] == [
        (small, "S", {"size": "S"}),
        (medium, "M", {"size": "M"}),
        (large, "L", {"size": "L"}),
    ]
    assert heard["stock"] == 40
    assert heard["stock_by_sku"] == {str(small): 3, str(medium): 40, str(large): 0}
    state = (await fan.call("join", room))["state"]
    assert state["pinned"]["variant"] == "M"
    assert state["stock"] == {str(small): 3, str(medium): 40, str(large): 0}
    assert state["sale_left"] is None and state["sale_mine"] == 0

    # The viewer chose S and two units instead of the pinned M: the one buy use-case.
    bought = await fan.call(
        "buy", {"sku_id": small, "qty": 2, "idempotency_key": "pick-s", "stream_id": stream_id}
    )
    assert bought["order"]["status"] == "paid"
    assert bought["order"]["item_name"] == "Everyday Hoodie (S)"
    assert bought["order"]["qty"] == 2
    assert bought["order"]["amount"] == {"amount": 9800, "currency": "USD"}
    again = await buyer.call("GET", f"/api/orders/{bought['order']['id']}", status=200)
    assert again["order"]["item_name"] == "Everyday Hoodie (S)"
    changed = await mod.wait_for("stock:changed", sku_id=small)
    assert changed["available"] == 1 and changed["sale_left"] is None
    # More than is left is refused with what is left, and takes nothing.
    refused = await fan.call(
        "buy", {"sku_id": small, "qty": 2, "idempotency_key": "too-many", "stream_id": stream_id}
    )
    assert refused["error"]["code"] == "insufficient_stock"
    assert refused["error"]["available"] == 1


async def test_a_sales_own_units_are_pushed_down_to_sold_out_for_every_viewer(
    client: TestClient[Any, Any], viewers: list[Viewer], settings: Settings
) -> None:
    _, moderator, (first, second), stream_id, (product,) = await _show(
        client, settings, everyday_hoodie({"M": 40})
    )
    sku = product["variants"][0]["id"]
    mod = await _viewer(client, viewers, moderator.token)
    fan = await _viewer(client, viewers, first.token)
    other = await _viewer(client, viewers, second.token)
    room = {"stream_id": stream_id}
    for v in (mod, fan, other):
        assert (await v.call("join", room))["ok"]
    assert (await mod.call("pin", {**room, "product_id": product["id"]}))["ok"]
    terms = {"sku_id": sku, "sale_price": 2900, "quantity": 3, "duration_s": 60}
    assert (await mod.call("sale:start", {**room, **terms, "per_buyer_limit": 2}))["ok"]
    started = await other.wait_for("sale:started")
    assert started["stock"] == 40 and started["sale"]["quantity"] == 3
    state = (await other.call("join", room))["state"]
    assert state["sale_left"] == 3 and state["stock"][str(sku)] == 40

    bought = await fan.call(
        "buy", {"sku_id": sku, "qty": 2, "idempotency_key": "two", "stream_id": stream_id}
    )
    assert bought["order"]["status"] == "paid"
    assert bought["order"]["item_name"] == "Everyday Hoodie (M)"
    heard = await other.wait_for("stock:changed", sale_left=1)
    assert heard["available"] == 38
    # The buyer's limit is two: the third unit goes to someone else, and then there are none.
    limited = await fan.call(
        "buy", {"sku_id": sku, "qty": 1, "idempotency_key": "three", "stream_id": stream_id}
    )
    assert limited["error"]["code"] == "limit_exceeded"
    last = await other.call(
        "buy", {"sku_id": sku, "qty": 1, "idempotency_key": "last", "stream_id": stream_id}
    )
    assert last["order"]["status"] == "paid"
    # Every viewer hears the sale's units are gone, though the SKU has 37 left at list price.
    for v in (fan, mod):
        gone = await v.wait_for("stock:changed", sale_left=0)
        assert gone["available"] == 37
    rejoined = (await fan.call("join", room))["state"]
    assert rejoined["sale_left"] == 0
    assert rejoined["sale_mine"] == 2  # the per-buyer limit the card bounds its quantity by
    assert (await other.call("join", room))["state"]["sale_mine"] == 1
    anonymous = await _viewer(client, viewers, "")
    assert (await anonymous.call("join", room))["state"]["sale_mine"] == 0
    status, refused = await buy(second, sku, stream_id=stream_id)
    assert status == 409 and refused["error"]["code"] == "sold_out"


async def test_the_bag_lists_the_lineup_and_buys_at_list_price_beside_a_sale(
    client: TestClient[Any, Any], viewers: list[Viewer], settings: Settings
) -> None:
    serum = {
        "title": "Glow Serum",
        "description": "Vitamin C, 30 ml.",
        "variants": [
            {
                "sku": f"SERUM-{uuid.uuid4().hex[:6]}",
                "price_minor": 2900,
                "currency": "USD",
                "stock_on_hand": 5,
                "attributes": {"volume": "30 ml"},
            }
        ],
    }
    creator, moderator, (buyer, _), stream_id, (hoodie, glow) = await _show(
        client, settings, everyday_hoodie({"S": 2, "M": 4}), serum
    )
    bag = await buyer.call("GET", f"/api/streams/{stream_id}/bag", status=200)
    assert bag["stream_id"] == stream_id
    assert bag["status"] == "scheduled"
    assert bag["max_qty"] == settings.max_unpaid_per_sku == 5  # the unpaid bound is below 10
    assert [p["product_id"] for p in bag["products"]] == [hoodie["id"], glow["id"]]
    first, second = bag["products"]
    assert first["title"] == "Everyday Hoodie"
    assert first["description"] == "Heavyweight cotton."
    assert first["image_url"] == "https://example.com/hoodie.jpg"
    assert second["image_url"] is None
    assert [(v["label"], v["available"], v["price"]) for v in first["variants"]] == [
        ("S", 2, {"amount": 4900, "currency": "USD"}),
        ("M", 4, {"amount": 4900, "currency": "USD"}),
    ]
    assert second["variants"][0]["label"] == "30 ml"
    # Anyone may look; a stream that does not exist is a 404.
    anonymous = await client.get(f"/api/streams/{stream_id}/bag")
    assert anonymous.status == 200
    missing = await client.get("/api/streams/999999/bag")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"

    # A sale runs on the hoodie's M: the serum from the bag is at its list price.
    mod = await _viewer(client, viewers, moderator.token)
    assert (await mod.call("join", {"stream_id": stream_id}))["ok"]
    medium = hoodie["variants"][1]["id"]
    sale = {"stream_id": stream_id, "sku_id": medium, "sale_price": 2500, "quantity": 2}
    assert (await mod.call("sale:start", {**sale, "duration_s": 60}))["ok"]
    serum_sku = glow["variants"][0]["id"]
    status, body = await buy(buyer, serum_sku, qty=2, stream_id=stream_id)
    assert status == 201, body
    assert body["order"]["unit_price"] == {"amount": 2900, "currency": "USD"}
    assert body["order"]["item_name"] == "Glow Serum (30 ml)"
    assert body["order"]["flash_sale"] is None
    heard = await mod.wait_for("stock:changed", sku_id=serum_sku)
    assert heard["available"] == 3 and heard["sale_left"] is None
    again = await buyer.call("GET", f"/api/streams/{stream_id}/bag", status=200)
    assert again["products"][1]["variants"][0]["available"] == 3

    # A product taken off sale leaves the bag.
    await creator.call("PATCH", f"/api/products/{glow['id']}", {"active": False}, status=200)
    after = await buyer.call("GET", f"/api/streams/{stream_id}/bag", status=200)
    assert [p["product_id"] for p in after["products"]] == [hoodie["id"]]

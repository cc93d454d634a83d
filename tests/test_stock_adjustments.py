"""A seller's stock: adjustments with reasons and their audit log, never below what buyers hold
(two at once included), low-stock emails (once per crossing, through a real SMTP server), the
show forecasts, and who may do what."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.inventory import forecast
from livecommerce.platform.mail import MAILER
from tests.conftest import Account, accept_invitation, hoodie, sign_up
from tests.mailbox import Mailbox, body_text, smtp_settings
from tests.shopping import buy, open_shop, stock_on_hand


async def adjust(
    account: Account, sku_id: int, delta: int, reason: str = "received", note: str = ""
) -> tuple[int, Any]:
    response = await account.client.post(
        f"/api/skus/{sku_id}/adjustments",
        json={"delta": delta, "reason": reason, "note": note},
        headers=account.headers,
    )
    return response.status, await response.json()


async def test_adjustments_move_stock_and_are_audited(client: Any) -> None:
    seller, _buyer, sku_id = await open_shop(client, stock=5)
    status, body = await adjust(seller, sku_id, 12, "received", "carton 7")
    assert status == 201, body
    assert body["stock"] == {"on_hand": 17, "held": 0, "available": 17}
    status, body = await adjust(seller, sku_id, -2, "damaged")
    assert status == 201 and body["adjustment"]["on_hand_after"] == 15
    status, body = await adjust(seller, sku_id, -1, "count_correction")
    assert status == 201
    assert await stock_on_hand(client, sku_id) == 14
    log = (await seller.call("GET", f"/api/skus/{sku_id}/adjustments", status=200))["adjustments"]
    assert [(a["delta"], a["reason"], a["on_hand_after"]) for a in log] == [
        (-1, "count_correction", 14),
        (-2, "damaged", 15),
        (12, "received", 17),
    ]
    assert {a["actor_id"] for a in log} == {seller.id} and log[2]["note"] == "carton 7"
    assert all(a["created_at"].endswith("+00:00") for a in log)
    page = await seller.call("GET", f"/api/skus/{sku_id}/adjustments?limit=1&before={log[0]['id']}")
    assert [a["id"] for a in page["adjustments"]] == [log[1]["id"]]
    # A count set on the product itself is logged too.
    product_id = (await seller.call("GET", "/api/inventory"))["skus"][0]["product_id"]
    variant = (await seller.call("GET", f"/api/products/{product_id}"))["product"]["variants"][0]
    await seller.call(
        "PATCH",
        f"/api/products/{product_id}",
        {"variants": [{"sku": variant["sku"], "stock_on_hand": 20}]},
        status=200,
    )
    log = (await seller.call("GET", f"/api/skus/{sku_id}/adjustments"))["adjustments"]
    assert (log[0]["delta"], log[0]["reason"], log[0]["on_hand_after"]) == (
        6,
        "count_correction",
        20,
    )
    await adjust(seller, sku_id, -6, "count_correction")
    # Bad input is a clear 4xx, and the stock did not move.
    for payload in (
        {"delta": 0, "reason": "received"},
        {"delta": 3, "reason": "stolen-by-elves"},
        {"delta": "3", "reason": "received"},
        {"delta": 10**9, "reason": "received"},
    ):
        response = await client.post(
            f"/api/skus/{sku_id}/adjustments", json=payload, headers=seller.headers
        )
        assert response.status == 422, payload
    assert await stock_on_hand(client, sku_id) == 14


async def test_never_below_what_buyers_hold(client: Any) -> None:
    seller, buyer, sku_id = await open_shop(client, stock=5)
    status, body = await buy(buyer, sku_id, qty=3)
    assert status in (201, 202), body
    status, body = await adjust(seller, sku_id, -3, "lost")
    assert status == 409 and body["error"]["code"] == "conflict"
    assert body["error"]["available"] == 2
    assert await stock_on_hand(client, sku_id) == 5
    status, body = await adjust(seller, sku_id, -2, "lost")
    assert status == 201 and body["stock"] == {"on_hand": 3, "held": 3, "available": 0}
    log = (await seller.call("GET", f"/api/skus/{sku_id}/adjustments"))["adjustments"]
    assert [a["delta"] for a in log] == [-2]  # the refusal left no trace


async def test_two_adjustments_at_once_never_go_below_held(client: Any) -> None:
    seller, buyer, sku_id = await open_shop(client, stock=10)
    status, _ = await buy(buyer, sku_id, qty=4)
    assert status in (201, 202)
    for _round in range(3):
        results = await asyncio.gather(
            adjust(seller, sku_id, -4, "damaged"), adjust(seller, sku_id, -4, "lost")
        )
        statuses = sorted(s for s, _ in results)
        on_hand = await stock_on_hand(client, sku_id)
        assert on_hand >= 4, results  # the 4 held units are always there
        if statuses == [201, 409]:
            break
    assert statuses == [201, 409], results
    assert await stock_on_hand(client, sku_id) == 6
    log = (await seller.call("GET", f"/api/skus/{sku_id}/adjustments"))["adjustments"]
    assert [(a["delta"], a["on_hand_after"]) for a in log] == [(-4, 6)]
    # Ups and downs at once add up exactly (in whatever order they land, the downs alone never
    # reach below the 4 held: 6 - 1 - 1 = 4).
    results = await asyncio.gather(
        *(adjust(seller, sku_id, d, "received" if d > 0 else "lost") for d in (5, -1, 3, -1))
    )
    assert [s for s, _ in results] == [201] * 4
    assert await stock_on_hand(client, sku_id) == 12
    inventory = (await seller.call("GET", "/api/inventory"))["skus"]
    assert [(s["on_hand"], s["held"], s["available"]) for s in inventory] == [(12, 4, 8)]


async def test_only_the_owner_touches_stock_not_a_moderator(client: Any) -> None:
    seller, buyer, sku_id = await open_shop(client, stock=5)
    product_id = (await seller.call("GET", "/api/inventory"))["skus"][0]["product_id"]
    stream = (
        await seller.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product_id]}, status=201
        )
    )["stream"]
    moderator = await sign_up(client, "mod")
    await seller.call(
        "POST", f"/api/streams/{stream['id']}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    for stranger in (moderator, buyer):
        status, body = await adjust(stranger, sku_id, 5)
        assert status == 403 and body["error"]["code"] == "forbidden"
        await stranger.call("GET", f"/api/skus/{sku_id}/adjustments", status=403)
        await stranger.call("PUT", f"/api/skus/{sku_id}/low-stock", {"threshold": 1}, status=403)
        await stranger.call(
            "PATCH", f"/api/products/{product_id}", {"title": "Mine now"}, status=403
        )
        assert (await stranger.call("GET", "/api/inventory", status=200))["skus"] == []
        await stranger.call("GET", f"/api/streams/{stream['id']}/reorder", status=403)
    # The moderator reads the live forecast of the show they moderate; a viewer does not.
    await moderator.call("GET", f"/api/streams/{stream['id']}/forecast", status=200)
    await buyer.call("GET", f"/api/streams/{stream['id']}/forecast", status=403)
    status, _ = await adjust(seller, 999_999, 1)
    assert status == 404
    assert (await client.post(f"/api/skus/{sku_id}/adjustments", json={})).status == 401


async def test_low_stock_email_once_per_crossing(
    aiohttp_client: Any, settings: Settings, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server
    app = create_app(smtp_settings(settings, port, public_url="https://shop.example.test"))
    client = await aiohttp_client(app)
    seller = await sign_up(client, "seller")
    code = f"LOW-{uuid.uuid4().hex[:6]}"
    product = (await seller.call("POST", "/api/products", hoodie(code, 10), status=201))["product"]
    sku_id = product["variants"][0]["id"]
    body = await seller.call("PUT", f"/api/skus/{sku_id}/low-stock", {"threshold": 3}, status=200)
    assert body["low_stock_alerted"] is False
    _, body = await adjust(seller, sku_id, -6, "damaged")
    assert body["low_stock_alerted"] is False  # 4 left: above 3
    _, body = await adjust(seller, sku_id, -1, "lost")
    assert body["low_stock_alerted"] is True  # 3 left: crossed
    _, body = await adjust(seller, sku_id, -1, "lost")
    assert body["low_stock_alerted"] is False  # still low: no second email
    message = await mailbox.wait_for(seller.email, f"Low stock: Hoodie ({code})")
    text = body_text(message)
    assert "2 units left" not in text and "3 units left" in text
    assert "https://shop.example.test/studio/catalog" in text
    inventory = (await seller.call("GET", "/api/inventory"))["skus"]
    assert inventory[0]["low"] is True and inventory[0]["low_stock_threshold"] == 3
    # A sale takes it further down: still no email. A restock re-arms; the next crossing tells.
    buyer = await sign_up(client, "buyer")
    status, _ = await buy(buyer, sku_id, qty=1)
    assert status in (201, 202)
    await asyncio.sleep(2.5)  # the watcher's coalescing interval
    _, body = await adjust(seller, sku_id, 10, "received")
    assert body["low_stock_alerted"] is False
    assert (await seller.call("GET", "/api/inventory"))["skus"][0]["low"] is False
    _, body = await adjust(seller, sku_id, -9, "count_correction")
    assert body["low_stock_alerted"] is True
    await app[MAILER].drain()
    assert len(mailbox.to(seller.email)) == 2
    await client.close()


def test_forecast_math() -> None:
    ten = timedelta(minutes=10)
    assert forecast.sell_out_minutes(30, 15, ten) == pytest.approx(20.0)  # 1.5/min, 30 left
    assert forecast.sell_out_minutes(0, 15, ten) == 0.0
    assert forecast.sell_out_minutes(5, 0, ten) is None
    # Ten seconds of sales read as a minute's, not 6x faster.
    assert forecast.sell_out_minutes(12, 2, timedelta(seconds=10)) == pytest.approx(6.0)
    assert forecast.sell_through(30, 10) == pytest.approx(0.75)
    assert forecast.sell_through(0, 0) == 0.0
    assert forecast.reorder_units(30, 10) == 20  # start the next show with 30
    assert forecast.reorder_units(20, 0) == 30  # sold out: demand was higher
    assert forecast.reorder_units(3, 40) == 0
    assert forecast.reorder_units(0, 0) == 0


async def test_forecast_and_reorder_from_the_shows_sales(client: Any) -> None:
    seller, buyer, sku_id = await open_shop(client, stock=20)
    product_id = (await seller.call("GET", "/api/inventory"))["skus"][0]["product_id"]
    stream = (
        await seller.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product_id]}, status=201
        )
    )["stream"]
    await seller.call("PATCH", f"/api/streams/{stream['id']}", {"status": "live"}, status=200)
    before = await seller.call("GET", f"/api/streams/{stream['id']}/forecast", status=200)
    assert before["skus"][0]["sold_out_in_minutes"] is None  # nothing sold: no rate yet
    for _ in range(2):
        status, body = await buy(buyer, sku_id, qty=2, stream_id=stream["id"])
        assert status in (201, 202), body
    live = await seller.call("GET", f"/api/streams/{stream['id']}/forecast", status=200)
    (row,) = live["skus"]
    assert row["sku_id"] == sku_id and row["units_in_window"] == 4 and row["available"] == 16
    # Under a minute in: read as 4 units a minute, 16 left -> 4 minutes.
    assert row["sold_out_in_minutes"] == pytest.approx(4.0, rel=0.05)
    await seller.call("PATCH", f"/api/streams/{stream['id']}", {"status": "ended"}, status=200)
    after = await seller.call("GET", f"/api/streams/{stream['id']}/reorder", status=200)
    (row,) = after["skus"]
    assert (row["sold"], row["left"], row["sell_through"], row["reorder"]) == (4, 16, 0.2, 0)

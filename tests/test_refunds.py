"""Refunds under concurrency: never more refunded than paid, never more restocked than sold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import orders, refunds, skus
from tests.conftest import Account, accept_invitation, sign_up
from tests.shopping import OK_CARD, buy, card, open_shop, stock_on_hand


async def _paid_order(
    client: TestClient[Any, Any], settings: Settings, stock: int, qty: int
) -> tuple[Account, int, dict[str, Any]]:
    seller, buyer, sku = await open_shop(client, stock=stock)
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    status, body = await buy(buyer, sku, qty=qty)
    assert status == 201 and body["order"]["status"] == "paid", body
    return seller, sku, body["order"]


async def _refund(seller: Account, order_id: int, body: dict[str, Any]) -> tuple[int, Any]:
    response = await seller.client.post(
        f"/api/orders/{order_id}/refunds", json=body, headers=seller.headers
    )
    return response.status, await response.json()


async def _settled(client: TestClient[Any, Any], order_id: int) -> tuple[int, int]:
    """(amount, units) of the refunds Stripe accepted for the order."""
    async with client.app[ENGINE].connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(refunds.c.amount_minor), 0),
                    sa.func.coalesce(sa.func.sum(refunds.c.restocked_qty), 0),
                ).where(refunds.c.order_id == order_id, refunds.c.status == "succeeded")
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_concurrent_small_refunds_restock_a_one_unit_order_once(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """The issue's case: refunds of 1 minor unit with ``restock_qty: 1`` on a one-unit order."""
    seller, sku, order = await _paid_order(client, settings, stock=3, qty=1)
    assert await stock_on_hand(client, sku) == 2
    results = await asyncio.gather(
        *(_refund(seller, order["id"], {"amount_minor": 1, "restock_qty": 1}) for _ in range(12))
    )
    statuses = [status for status, _ in results]
    assert statuses.count(201) == 1, results
    assert set(statuses) == {201, 422}
    refused = next(body for status, body in results if status == 422)
    assert refused["error"]["code"] == "invalid_input"
    # Without restocking, small refunds still go through, each counted once.
    more = await asyncio.gather(
        *(_refund(seller, order["id"], {"amount_minor": 1}) for _ in range(8))
    )
    assert [status for status, _ in more] == [201] * 8
    seen = await seller.call("GET", f"/api/orders/{order['id']}", status=200)
    assert seen["order"]["refunded"]["amount"] == 9
    assert seen["order"]["restocked_qty"] == 1
    assert await _settled(client, order["id"]) == (9, 1)
    assert await stock_on_hand(client, sku) == 3
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (3, 0)


async def test_concurrent_refunds_never_exceed_what_was_paid(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    seller, sku, order = await _paid_order(client, settings, stock=5, qty=2)
    total = order["amount"]["amount"]  # 9800
    big = [_refund(seller, order["id"], {"amount_minor": 2000}) for _ in range(10)]
    small = [_refund(seller, order["id"], {"amount_minor": 1, "restock_qty": 1}) for _ in range(5)]
    results = await asyncio.gather(*big, *small)
    assert all(status in (201, 422) for status, _ in results), results
    # 4 x 2000 (+ 2 x 1) fit in 9800, a fifth 2000 does not; two units were sold.
    assert [status for status, _ in results[:10]].count(201) == 4, results
    assert [status for status, _ in results[10:]].count(201) == 2, results
    seen = await seller.call("GET", f"/api/orders/{order['id']}", status=200)
    assert seen["order"]["refunded"]["amount"] == 8002
    assert seen["order"]["restocked_qty"] == 2
    # Everything left, asked for by many at once: exactly one gets it.
    rest = await asyncio.gather(*(_refund(seller, order["id"], {}) for _ in range(6)))
    assert [status for status, _ in rest].count(201) == 1, rest
    final = await seller.call("GET", f"/api/orders/{order['id']}", status=200)
    assert final["order"]["status"] == "refunded"
    assert final["order"]["refunded"]["amount"] == total
    amount, units = await _settled(client, order["id"])
    assert (amount, units) == (total, 2)
    assert await stock_on_hand(client, sku) == 5
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held) == (5, 0)


async def test_only_the_seller_refunds(client: TestClient[Any, Any], settings: Settings) -> None:
    seller, _sku, order = await _paid_order(client, settings, stock=2, qty=1)
    stranger = await sign_up(client, "stranger")
    status, body = await _refund(stranger, order["id"], {"amount_minor": 100})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await _refund(seller, order["id"], {"amount_minor": 100, "restock_qty": 2})
    assert status == 422 and body["error"]["restockable"] == 1
    assert (await seller.call("GET", f"/api/orders/{order['id']}"))["order"]["refunded"][
        "amount"
    ] == 0


async def test_the_stream_team_refunds_only_orders_of_that_stream(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    seller, buyer, sku = await open_shop(client, stock=4)
    moderator = await sign_up(client, "moderator")
    async with client.app[ENGINE].connect() as conn:
        product = (
            await conn.execute(sa.select(skus.c.product_id).where(skus.c.id == sku))
        ).scalar_one()
    stream = (
        await seller.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product]}, status=201
        )
    )["stream"]
    await seller.call(
        "POST", f"/api/streams/{stream['id']}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    _s, in_stream = await buy(buyer, sku, stream_id=stream["id"])
    _s, elsewhere = await buy(buyer, sku)
    assert in_stream["order"]["status"] == elsewhere["order"]["status"] == "paid"
    status, body = await _refund(moderator, in_stream["order"]["id"], {"amount_minor": 100})
    assert status == 201, body
    status, body = await _refund(moderator, elsewhere["order"]["id"], {"amount_minor": 100})
    assert status == 403 and body["error"]["code"] == "forbidden"


async def test_a_refund_left_unanswered_is_sent_again_by_the_next(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """A process died between reserving a refund and hearing Stripe's answer: the next refund
    of that order sends it again, under its own key, and settles it once."""
    seller, sku, order = await _paid_order(client, settings, stock=2, qty=1)
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(
            orders.update()
            .where(orders.c.id == order["id"])
            .values(refunded_minor=orders.c.refunded_minor + 900, restocked_qty=1)
        )
        await conn.execute(
            refunds.insert().values(
                order_id=order["id"],
                amount_minor=900,
                restocked_qty=1,
                reason="crashed",
                status="requested",
                created_at=datetime.now(UTC) - timedelta(minutes=10),
            )
        )
    status, body = await _refund(seller, order["id"], {"amount_minor": 100})
    assert status == 201, body
    assert body["order"]["refunded"]["amount"] == 1000
    assert await _settled(client, order["id"]) == (1000, 1)
    assert await stock_on_hand(client, sku) == 2
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and level.available == 2

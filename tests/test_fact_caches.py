"""The purchase path's caches of SKU and stream facts hear of edits made on another process
(through the event bus) instead of waiting for their TTL: two apps sharing SQL and Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.checkout.lineups import LINEUP_TTL_S
from livecommerce.checkout.purchases import PURCHASES
from livecommerce.config import Settings
from livecommerce.events.bus import EVENTS
from livecommerce.live.rooms.rooms import ROOMS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import products, skus
from tests.conftest import Account
from tests.shopping import buy, open_shop

SKU_TTL_S = 5.0  # SkuDirectory's default


@pytest.fixture
async def other(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    """A second process: same database, same Redis namespace."""
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


async def _listening(*clients: TestClient[Any, Any]) -> None:
    async with asyncio.timeout(10):
        for client in clients:
            await client.app[EVENTS].wait_listening()


async def _buy_and_cancel(account: Account, sku: int, **extra: Any) -> tuple[int, dict[str, Any]]:
    """A purchase whose order is cancelled at once, so that retries stay under the unpaid cap."""
    status, body = await buy(account, sku, **extra)
    if status == 201:
        await account.call("POST", f"/api/orders/{body['order']['id']}/cancel", status=200)
    return status, body


def _on(client: TestClient[Any, Any], account: Account) -> Account:
    return Account(client, {"id": account.id, "email": account.email}, account.token)


async def _within(
    seconds: float, attempt: Callable[[], Awaitable[tuple[int, dict[str, Any]]]]
) -> tuple[int, dict[str, Any]]:
    """Retry ``attempt`` until it answers something other than 201, for ``seconds`` at most."""
    deadline = time.monotonic() + seconds
    while True:
        status, body = await attempt()
        if status != 201 or time.monotonic() > deadline:
            return status, body
        await asyncio.sleep(0.05)


async def test_a_product_edit_on_one_process_holds_on_the_other_at_once(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    seller, buyer, sku = await open_shop(client, stock=20)
    product_id = (await seller.call("GET", "/api/products", status=200))["products"][0]["id"]
    buyer_there = _on(other, buyer)
    await _listening(client, other)

    # The other process has the SKU's facts in its cache; the price and currency change here.
    status, body = await _buy_and_cancel(buyer_there, sku)
    assert status == 201 and body["order"]["amount"] == {"amount": 4900, "currency": "USD"}
    cached_at = time.monotonic()
    code = (await seller.call("GET", f"/api/products/{product_id}", status=200))["product"][
        "variants"
    ][0]["sku"]
    change = {"variants": [{"sku": code, "price_minor": 3900, "currency": "EUR"}]}
    await seller.call("PATCH", f"/api/products/{product_id}", change, status=200)
    started = time.monotonic()
    status, body = await _buy_and_cancel(buyer_there, sku)
    while body["order"]["amount"]["currency"] != "EUR" and time.monotonic() - started < 1.0:
        await asyncio.sleep(0.05)
        status, body = await _buy_and_cancel(buyer_there, sku)
    assert status == 201 and body["order"]["amount"] == {"amount": 3900, "currency": "EUR"}
    assert time.monotonic() - cached_at < SKU_TTL_S  # the event did it, not the TTL

    # Taken off sale here: refused there within a second.
    cached_at = time.monotonic()
    await seller.call("PATCH", f"/api/products/{product_id}", {"active": False}, status=200)
    status, body = await _within(1.0, lambda: _buy_and_cancel(buyer_there, sku))
    assert (status, body["error"]["code"]) == (409, "not_on_sale")
    assert time.monotonic() - cached_at < SKU_TTL_S


async def test_a_lineup_change_or_the_end_of_a_show_holds_on_the_other_process_at_once(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    creator, buyer, sku = await open_shop(client, stock=20)
    product_id = (await creator.call("GET", "/api/products", status=200))["products"][0]["id"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product_id]}, status=201
        )
    )["stream"]["id"]
    buyer_there = _on(other, buyer)
    await _listening(client, other)

    assert (await _buy_and_cancel(buyer_there, sku, stream_id=stream))[0] == 201  # cached there
    cached_at = time.monotonic()
    await creator.call("PATCH", f"/api/streams/{stream}", {"lineup": []}, status=200)
    status, body = await _within(1.0, lambda: _buy_and_cancel(buyer_there, sku, stream_id=stream))
    assert (status, body["error"]["code"]) == (409, "not_in_lineup")
    assert time.monotonic() - cached_at < LINEUP_TTL_S

    await creator.call("PATCH", f"/api/streams/{stream}", {"lineup": [product_id]}, status=200)
    await asyncio.sleep(0.3)
    assert (await _buy_and_cancel(buyer_there, sku, stream_id=stream))[
        0
    ] == 201  # cached there again
    cached_at = time.monotonic()
    await creator.call("PATCH", f"/api/streams/{stream}", {"status": "ended"}, status=200)
    status, body = await _within(1.0, lambda: _buy_and_cancel(buyer_there, sku, stream_id=stream))
    assert (status, body["error"]["code"]) == (409, "stream_ended")
    assert time.monotonic() - cached_at < LINEUP_TTL_S


async def test_a_lookup_overlapping_a_forget_is_not_cached(client: TestClient[Any, Any]) -> None:
    """What a lookup read may predate the edit that made the cache forget: it is used once, not
    kept for the TTL."""
    _seller, _buyer, sku = await open_shop(client)
    directory = client.app[PURCHASES].directory
    lookup = asyncio.create_task(directory.facts(sku))
    for _ in range(3):  # the lookup runs as a task of its own: it is under way, waiting on SQL
        await asyncio.sleep(0)
    directory.forget(sku)
    assert (await lookup).active
    async with client.app[ENGINE].begin() as conn:
        product_id = (
            await conn.execute(sa.select(skus.c.product_id).where(skus.c.id == sku))
        ).scalar_one()
        await conn.execute(
            products.update().where(products.c.id == product_id).values(active=False)
        )
    assert not (await directory.facts(sku)).active


async def test_a_pinned_card_is_read_once_and_an_edit_on_the_other_process_shows_at_once(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    creator, _buyer, _sku = await open_shop(client, stock=20)
    product_id = (await creator.call("GET", "/api/products", status=200))["products"][0]["id"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product_id]}, status=201
        )
    )["stream"]["id"]
    creator_there = _on(other, creator)
    await _listening(client, other)
    cards = other.app[ROOMS]._read_card

    async def pin() -> dict[str, Any]:
        pinned = await creator_there.call(
            "POST", f"/api/streams/{stream}/pin", {"product_id": product_id}, status=201
        )
        return dict(pinned["pinned"])

    # Pinned five times on the other process: the catalog is read once.
    reads = cards.reads
    for _ in range(5):
        assert (await pin())["price"] == 4900
    assert cards.reads == reads + 1

    # Edited here: the other process's next pin shows the new price, long before the TTL.
    cached_at = time.monotonic()
    code = (await creator.call("GET", f"/api/products/{product_id}", status=200))["product"][
        "variants"
    ][0]["sku"]
    change = {"variants": [{"sku": code, "price_minor": 3900, "currency": "USD"}]}
    await creator.call("PATCH", f"/api/products/{product_id}", change, status=200)
    card = await pin()
    while card["price"] != 3900 and time.monotonic() - cached_at < 1.0:
        await asyncio.sleep(0.05)
        card = await pin()
    assert card["price"] == 3900
    assert time.monotonic() - cached_at < 5.0  # the event did it, not the TTL

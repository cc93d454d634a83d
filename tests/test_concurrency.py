"""Thousands of buyers, a handful of units, two server processes: exactly the stock is sold.

The servers are real ``livecommerce serve`` processes sharing one PostgreSQL database, one Redis
and one Stripe emulator. While buyers rush, a sampler reads the SKU's Redis counters in one step
and checks the ledger: available never below zero, available + held + sold = listed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import sqlalchemy as sa
from redis.asyncio import Redis

from bench.crowd import make_buyers
from bench.processes import ServerProcess
from livecommerce.platform.db.engine import create_engine
from livecommerce.platform.db.tables import orders, skus
from tests.conftest import hoodie
from tests.test_checkout import OK_CARD

LISTED = 25
RUSH = 2000
SECOND_RUSH = 600
CANCELLED = 5


class Sampler:
    """Reads the SKU's counters in one HMGET, over and over, and keeps every reading."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self.key = key
        self.readings: list[tuple[int, int, int]] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            avail, held, sold = await self._redis.hmget(self.key, ["avail", "held", "sold"])
            if avail is not None:
                self.readings.append((int(avail), int(held), int(sold)))
            await asyncio.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()


async def _rush(
    session: aiohttp.ClientSession, servers: list[ServerProcess], tokens: list[str], sku: int
) -> list[tuple[int, dict[str, Any]]]:
    start = asyncio.Event()

    async def one(i: int, token: str) -> tuple[int, dict[str, Any]]:
        await start.wait()
        async with session.post(
            f"{servers[i % 2].url}/api/purchases",
            json={"sku_id": sku, "qty": 1},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
        ) as response:
            return response.status, await response.json()

    tasks = [asyncio.create_task(one(i, t)) for i, t in enumerate(tokens)]
    await asyncio.sleep(0.2)  # every buyer is waiting at the line
    start.set()
    return await asyncio.gather(*tasks)


async def test_thousands_of_buyers_across_two_processes_buy_exactly_the_stock(
    server_processes: list[ServerProcess],
    postgres_url: str,
    redis_url: str,
    localstripe_url: str,
) -> None:
    a, b = server_processes
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            f"{a.url}/api/accounts",
            json={"email": "seller@example.com", "password": "correct horse", "display_name": "S"},
        ) as response:
            seller_token = (await response.json())["token"]
        async with session.post(
            f"{b.url}/api/products",
            json=hoodie("RUSH-1", LISTED),
            headers={"Authorization": f"Bearer {seller_token}"},
        ) as response:
            assert response.status == 201
            sku = (await response.json())["product"]["variants"][0]["id"]
        session.cookie_jar.clear()

        tokens = await make_buyers(postgres_url, RUSH + SECOND_RUSH)
        namespace = a.env["REDIS_NAMESPACE"]
        redis = Redis.from_url(redis_url, decode_responses=True)
        sampler = Sampler(redis, f"{namespace}:stock:{{sku{sku}}}")
        sampling = asyncio.create_task(sampler.run())
        try:
            first = await _rush(session, server_processes, tokens[:RUSH], sku)
            won = [body["order"] for status, body in first if status == 201]
            refused = [body["error"]["code"] for status, body in first if status != 201]
            assert len(won) == LISTED
            assert set(refused) == {"sold_out"}, refused[:5]
            assert len({order["buyer_id"] for order in won}) == LISTED
            assert sum(1 for status, _ in first if status == 409) == RUSH - LISTED

            # Some winners change their minds: their units go back and a second rush takes
            # exactly those.
            by_buyer = {order["buyer_id"]: order for order in won}
            winners = {
                body["order"]["buyer_id"]: tokens[i]
                for i, (status, body) in enumerate(first)
                if status == 201
            }
            quitters = list(winners)[:CANCELLED]
            for n, buyer_id in enumerate(quitters):
                async with session.post(
                    f"{server_processes[n % 2].url}/api/orders/{by_buyer[buyer_id]['id']}/cancel",
                    headers={"Authorization": f"Bearer {winners[buyer_id]}"},
                ) as response:
                    assert response.status == 200, await response.text()
            second = await _rush(session, server_processes, tokens[RUSH:], sku)
            won_again = [body["order"] for status, body in second if status == 201]
            assert len(won_again) == CANCELLED

            # Everyone still holding pays, half through each process, all at once.
            payers = {k: v for k, v in winners.items() if k not in quitters}
            payers.update(
                {
                    body["order"]["buyer_id"]: tokens[RUSH + i]
                    for i, (status, body) in enumerate(second)
                    if status == 201
                }
            )
            orders_to_pay = [o for o in won if o["buyer_id"] not in quitters] + won_again
            pm_ids = await asyncio.gather(
                *(_payment_method(session, localstripe_url) for _ in orders_to_pay)
            )

            async def pay(n: int, order: dict[str, Any], pm: str) -> str:
                async with session.post(
                    f"{server_processes[n % 2].url}/api/orders/{order['id']}/payment",
                    json={"payment_method_id": pm},
                    headers={"Authorization": f"Bearer {payers[order['buyer_id']]}"},
                ) as response:
                    body = await response.json()
                    assert response.status == 200, body
                    return str(body["order"]["status"])

            statuses = await asyncio.gather(
                *(
                    pay(n, o, pm)
                    for n, (o, pm) in enumerate(zip(orders_to_pay, pm_ids, strict=True))
                )
            )
            assert statuses == ["paid"] * LISTED
        finally:
            sampler.stop()
            await sampling
            final = await redis.hmget(sampler.key, ["avail", "held", "sold"])
            await redis.aclose()

    assert len(sampler.readings) > 50
    for avail, held, sold in sampler.readings:
        assert avail >= 0
        assert avail + held + sold == LISTED
    assert [int(n) for n in final] == [0, 0, LISTED]

    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            on_hand = (
                await conn.execute(sa.select(skus.c.stock_on_hand).where(skus.c.id == sku))
            ).scalar_one()
            paid = (
                await conn.execute(
                    sa.select(sa.func.sum(orders.c.qty)).where(
                        orders.c.sku_id == sku, orders.c.status == "paid"
                    )
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert (on_hand, paid) == (0, LISTED)


async def _payment_method(session: aiohttp.ClientSession, stripe_base: str) -> str:
    """A card PaymentMethod, as Stripe.js would make it in the browser."""
    async with session.post(
        f"{stripe_base}/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": OK_CARD,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
        headers={"Authorization": "Bearer sk_test_livecommerce"},
    ) as response:
        body = await response.json()
        assert response.status == 200, body
        return str(body["id"])

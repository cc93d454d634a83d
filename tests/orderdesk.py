"""Helpers for order desk and returns tests: a show with paid orders shipping to addresses."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import orders
from tests.conftest import Account
from tests.shopping import OK_CARD, buy, card, open_shop

HOME = {
    "name": "Bea Buyer",
    "line1": "1 Main Street",
    "line2": "Flat 2",
    "city": "Springfield",
    "region": "IL",
    "postal_code": "62701",
    "country": "US",
    "phone": "+1 217 555 0100",
}
OFFICE = {**HOME, "line1": "500 Office Park", "line2": ""}


class Show:
    """A seller's show, a buyer with a saved card, and one SKU."""

    def __init__(
        self, client: TestClient[Any, Any], seller: Account, buyer: Account, sku: int, stream: int
    ) -> None:
        self.client = client
        self.seller = seller
        self.buyer = buyer
        self.sku = sku
        self.stream = stream

    async def paid(
        self,
        address: dict[str, Any] | None = None,
        qty: int = 1,
        buyer: Account | None = None,
        stream: int | None = -1,
    ) -> dict[str, Any]:
        """A paid order of this show shipping to ``address`` (HOME by default)."""
        who = buyer or self.buyer
        status, body = await buy(who, self.sku, qty=qty)
        assert status == 201 and body["order"]["status"] == "paid", body
        order_id = body["order"]["id"]
        # The order is placed as checkout places it; the show and the address it ships to are
        # written as the live room's buy and the address book would have written them.
        async with self.client.app[ENGINE].begin() as conn:
            await conn.execute(
                orders.update()
                .where(orders.c.id == order_id)
                .values(
                    stream_id=self.stream if stream == -1 else stream,
                    shipping_address=HOME if address is None else address,
                )
            )
        return await self.order(order_id)

    async def order(self, order_id: int) -> dict[str, Any]:
        body = await self.seller.call("GET", f"/api/orders/{order_id}", status=200)
        return body["order"]  # type: ignore[no-any-return]

    async def delivered(self, qty: int = 1) -> dict[str, Any]:
        """A paid order taken through pack, ship and deliver."""
        order = await self.paid(qty=qty)
        parcel = (
            await self.seller.call("POST", "/api/parcels", {"order_ids": [order["id"]]}, status=201)
        )["parcel"]
        await self.seller.call(
            "POST",
            f"/api/parcels/{parcel['id']}/ship",
            {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"},
            status=200,
        )
        await self.seller.call("POST", f"/api/parcels/{parcel['id']}/deliver", status=200)
        return await self.order(order["id"])


async def open_show(client: TestClient[Any, Any], settings: Settings, stock: int = 20) -> Show:
    seller, buyer, sku = await open_shop(client, stock=stock)
    await add_card(buyer, settings)
    stream = (await seller.call("POST", "/api/streams", {"title": "Friday drop"}, status=201))[
        "stream"
    ]
    return Show(client, seller, buyer, sku, stream["id"])


async def add_card(account: Account, settings: Settings) -> None:
    await account.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )


async def set_order_times(client: TestClient[Any, Any], order_id: int, **values: Any) -> None:
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(orders.update().where(orders.c.id == order_id).values(**values))


async def count_rows(client: TestClient[Any, Any], query: sa.Select[Any]) -> int:
    async with client.app[ENGINE].connect() as conn:
        return int((await conn.execute(query)).scalar_one())

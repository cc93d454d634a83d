"""The show's bag: every product of a stream's lineup, to buy without leaving the stream.

``GET /api/streams/{id}/bag`` answers each product of the lineup, in the lineup's order, with
its photo (``image_url``, None without one), description and variants, each with its list price
and the units left to buy. A purchase from the bag is the one buy use-case (``checkout.buy``),
at the list price: a flash-sale price only ever applies to the sale's own SKU.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.catalog.products import Product, list_products
from livecommerce.checkout.purchases import MAX_QTY
from livecommerce.inventory.holds import StockLevel
from livecommerce.inventory.rebuild import load_sku
from livecommerce.inventory.reservations import RESERVATIONS, Reservations
from livecommerce.live.streams import get_stream
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import path_id
from livecommerce.platform.resources import SETTINGS


async def stream_bag(
    engine: AsyncEngine, reservations: Reservations, stream_id: int, max_qty: int = MAX_QTY
) -> dict[str, Any]:
    """``{"stream_id", "status", "max_qty", "products"}``; products not on sale (inactive) are
    left out. ``max_qty``: the most units one purchase may take (a buyer holds at most that
    many unpaid units of a SKU). Raises ``NotFound`` for no such stream."""
    async with engine.connect() as conn:
        stream = await get_stream(conn, stream_id)
        lineup = list(stream.lineup)
        found = await list_products(conn, ids=lineup, limit=max(len(lineup), 1))
    by_id = {p.id: p for p in found}
    products = [by_id[pid] for pid in lineup if pid in by_id]
    sku_ids = [v.id for p in products for v in p.variants]
    levels = await reservations.levels(sku_ids)  # one round trip for the whole lineup
    for sku_id in [s for s in sku_ids if levels[s] is None]:
        # Nobody bought it since start-up: its real figure comes from SQL, once.
        await load_sku(engine, reservations, sku_id)
        levels[sku_id] = await reservations.level(sku_id)
    return {
        "stream_id": stream.id,
        "status": stream.status.value,
        "max_qty": max_qty,
        "products": [_bag_item(p, levels) for p in products],
    }


def _bag_item(product: Product, levels: dict[int, StockLevel | None]) -> dict[str, Any]:
    return {
        "product_id": product.id,
        "title": product.title,
        "description": product.description,
        "image_url": product.image_url,
        "variants": [
            {
                "sku_id": v.id,
                "label": v.label,
                "attributes": v.attributes,
                "price": v.price.to_dict(),
                "available": level.available if (level := levels.get(v.id)) else 0,
            }
            for v in product.variants
        ],
    }


async def get_bag(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    settings = request.app[SETTINGS]
    max_qty = min(MAX_QTY, settings.max_unpaid_per_sku or MAX_QTY)
    bag = await stream_bag(request.app[ENGINE], request.app[RESERVATIONS], stream_id, max_qty)
    return web.json_response(bag)


OPERATIONS = (
    Operation(
        "GET",
        r"/api/streams/{id:\d+}/bag",
        get_bag,
        "The show's bag: the lineup's products with photos, variants, prices and units left",
        "checkout",
    ),
)

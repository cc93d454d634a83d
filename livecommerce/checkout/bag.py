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
    return {
        "stream_id": stream.id,
        "status": stream.status.value,
        "max_qty": max_qty,
        "products": [await _bag_item(engine, reservations, p) for p in products],
    }


async def _bag_item(
    engine: AsyncEngine, reservations: Reservations, product: Product
) -> dict[str, Any]:
    variants = []
    for variant in product.variants:
        level = await reservations.level(variant.id)
        if level is None:  # nobody bought it since start-up: the real figure comes from SQL
            await load_sku(engine, reservations, variant.id)
            level = await reservations.level(variant.id)
        variants.append(
            {
                "sku_id": variant.id,
                "label": variant.label,
                "attributes": variant.attributes,
                "price": variant.price.to_dict(),
                "available": level.available if level else 0,
            }
        )
    return {
        "product_id": product.id,
        "title": product.title,
        "description": product.description,
        "image_url": product.image_url,
        "variants": variants,
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

"""Forecasts from a show's sales: "at this rate, sold out in N minutes" while it is live, and
how many units to reorder once it is over.

The math is plain functions of counts; the queries read the show's orders (every order that
took stock counts as demand: reserved, paid and later, refunded too, but not failed, expired or
cancelled ones) and the units still free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.platform.db.tables import orders, products, skus, stream_lineup

RATE_WINDOW = timedelta(minutes=10)
MIN_WINDOW = timedelta(minutes=1)  # the first minute's rate is noise: read it as a minute's
NOT_DEMAND = ("failed", "expired", "cancelled")
REORDER_COVER = 1.0  # stock the next show with what this one sold...
SOLD_OUT_UPLIFT = 1.5  # ...and more when it sold out (demand was cut short)


def sell_out_minutes(available: int, units: int, window: timedelta) -> float | None:
    """Minutes until ``available`` is gone at the rate of ``units`` sold over ``window``;
    None when nothing sold (no rate to extrapolate), 0 when nothing is left."""
    if available <= 0:
        return 0.0
    minutes = max(window, MIN_WINDOW).total_seconds() / 60
    if units <= 0:
        return None
    return available / (units / minutes)


def sell_through(sold: int, left: int) -> float:
    """Share of the units offered that sold, 0..1."""
    offered = sold + max(left, 0)
    return sold / offered if offered else 0.0


def reorder_units(sold: int, left: int) -> int:
    """Units to order so the next show starts with what this one sold (times `REORDER_COVER`,
    and `SOLD_OUT_UPLIFT` on top when it sold out), less what is still on the shelf."""
    if sold <= 0:
        return 0
    target = sold * REORDER_COVER * (SOLD_OUT_UPLIFT if left <= 0 else 1.0)
    return max(math.ceil(target) - max(left, 0), 0)


@dataclass(frozen=True)
class LineupSku:
    sku_id: int
    code: str
    product_id: int
    title: str
    attributes: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku_id": self.sku_id,
            "sku": self.code,
            "product_id": self.product_id,
            "title": self.title,
            "attributes": self.attributes,
        }


async def lineup_skus(conn: AsyncConnection, stream_id: int) -> list[LineupSku]:
    rows = await conn.execute(
        sa.select(
            skus.c.id, skus.c.code, skus.c.attributes, products.c.id.label("pid"), products.c.title
        )
        .join(products, products.c.id == skus.c.product_id)
        .join(stream_lineup, stream_lineup.c.product_id == products.c.id)
        .where(stream_lineup.c.stream_id == stream_id)
        .order_by(stream_lineup.c.position, skus.c.id)
    )
    return [LineupSku(r.id, r.code, r.pid, r.title, dict(r.attributes)) for r in rows]


async def units_ordered(
    conn: AsyncConnection, stream_id: int, since: datetime | None = None
) -> dict[int, int]:
    """Units per SKU ordered in the stream (since ``since``), as demand (see the module)."""
    query = (
        sa.select(orders.c.sku_id, sa.func.sum(orders.c.qty))
        .where(orders.c.stream_id == stream_id, orders.c.status.not_in(NOT_DEMAND))
        .group_by(orders.c.sku_id)
    )
    if since is not None:
        query = query.where(orders.c.created_at >= since)
    return {int(sku_id): int(units) for sku_id, units in await conn.execute(query)}

"""HTTP routes for a seller's stock: adjustments and their audit log, low-stock thresholds, the
inventory overview, and forecasts from a show's sales.

Stock is the product owner's alone: a stream's moderators pin and sell, but do not change the
creator's catalog or stock (they may read the live sell-out forecast of a show they moderate).
"""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.accounts.roles import Role, require_role
from livecommerce.accounts.routes import current_user
from livecommerce.errors import Forbidden, NotFound
from livecommerce.events.bus import EVENTS
from livecommerce.events.stock import OnHandChanged
from livecommerce.inventory import forecast
from livecommerce.inventory.adjustments import (
    MAX_DELTA,
    Reason,
    adjust_stock,
    adjustments_of,
    held_units,
)
from livecommerce.inventory.lowstock import LOW_STOCK, set_threshold, thresholds
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import products, skus, streams, utcnow
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, path_id, query, read_json

STOCK_MAX = 10**7


class NewAdjustment(Payload):
    delta: int = Field(
        ge=-MAX_DELTA, le=MAX_DELTA, description="units added (received) or taken (damaged)"
    )
    reason: Reason
    note: str = Field(default="", max_length=200)


class LowStockThreshold(Payload):
    threshold: int | None = Field(
        ge=0, le=STOCK_MAX, description="alert at this many free units or fewer; null: no alert"
    )


class AuditQuery(Payload):
    limit: int = Field(default=50, ge=1, le=200)
    before: int | None = Field(default=None, ge=1, le=MAX_ID)


async def _owned_sku(conn: AsyncConnection, sku_id: int, user_id: int) -> None:
    owner = (
        await conn.execute(
            sa.select(products.c.owner_id)
            .join(skus, skus.c.product_id == products.c.id)
            .where(skus.c.id == sku_id)
        )
    ).scalar_one_or_none()
    if owner is None:
        raise NotFound("SKU")
    if owner != user_id:
        raise Forbidden("only the product's owner may change or read its stock")


async def _stock(request: web.Request, conn: AsyncConnection, sku_id: int) -> dict[str, int]:
    on_hand = (
        await conn.execute(sa.select(skus.c.stock_on_hand).where(skus.c.id == sku_id))
    ).scalar_one()
    level = await request.app[RESERVATIONS].level(sku_id)
    held = level.held if level is not None else await held_units(conn, sku_id)
    available = level.available if level is not None else max(on_hand - held, 0)
    return {"on_hand": int(on_hand), "held": int(held), "available": int(available)}


async def post_adjustment(request: web.Request) -> web.Response:
    sku_id = path_id(request, what="SKU")
    user = await current_user(request)
    body = await read_json(request, NewAdjustment)
    engine = request.app[ENGINE]
    async with engine.connect() as conn:
        await _owned_sku(conn, sku_id, user.id)
    adjustment = await adjust_stock(
        engine, request.app[RESERVATIONS], sku_id, body.delta, body.reason, user.id, body.note
    )
    await request.app[EVENTS].publish(OnHandChanged(sku_id=sku_id))  # live rooms redraw it
    alert = await request.app[LOW_STOCK].check(sku_id)
    async with engine.connect() as conn:
        stock = await _stock(request, conn, sku_id)
    return web.json_response(
        {
            "adjustment": adjustment.to_dict(),
            "stock": stock,
            "low_stock_alerted": alert is not None,
        },
        status=201,
    )


async def get_adjustments(request: web.Request) -> web.Response:
    sku_id = path_id(request, what="SKU")
    user = await current_user(request)
    q = query(request, AuditQuery)
    async with request.app[ENGINE].connect() as conn:
        await _owned_sku(conn, sku_id, user.id)
        found = await adjustments_of(conn, [sku_id], limit=q.limit, before=q.before)
    return web.json_response({"adjustments": [a.to_dict() for a in found]})


async def put_low_stock(request: web.Request) -> web.Response:
    sku_id = path_id(request, what="SKU")
    user = await current_user(request)
    body = await read_json(request, LowStockThreshold)
    async with request.app[ENGINE].begin() as conn:
        await _owned_sku(conn, sku_id, user.id)
        await set_threshold(conn, sku_id, body.threshold)
    alert = await request.app[LOW_STOCK].check(sku_id)
    return web.json_response(
        {"sku_id": sku_id, "threshold": body.threshold, "low_stock_alerted": alert is not None}
    )


async def get_inventory(request: web.Request) -> web.Response:
    """Every SKU of the caller's products with its stock and low-stock state."""
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        rows = (
            await conn.execute(
                sa.select(skus.c.id, skus.c.code, skus.c.attributes, products.c.id.label("pid"))
                .join(products, products.c.id == skus.c.product_id)
                .where(products.c.owner_id == user.id)
                .order_by(products.c.id, skus.c.id)
                .limit(2000)
            )
        ).all()
        limits = await thresholds(conn, [r.id for r in rows])
        items = []
        for r in rows:
            stock = await _stock(request, conn, r.id)
            limit = limits.get(r.id)
            items.append(
                {
                    "sku_id": r.id,
                    "sku": r.code,
                    "product_id": r.pid,
                    "attributes": dict(r.attributes),
                    **stock,
                    "low_stock_threshold": limit.threshold if limit else None,
                    "low": limit is not None and stock["available"] <= limit.threshold,
                }
            )
    return web.json_response({"skus": items})


async def get_forecast(request: web.Request) -> web.Response:
    """While a show is live: per lineup SKU, the recent rate and minutes to sell out."""
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        await require_role(conn, stream_id, user.id, Role.CREATOR, Role.MODERATOR)
        started = (
            await conn.execute(sa.select(streams.c.started_at).where(streams.c.id == stream_id))
        ).scalar_one()
        at = utcnow()
        since = at - forecast.RATE_WINDOW
        if started is not None and started > since:
            since = started
        window = at - since
        recent = await forecast.units_ordered(conn, stream_id, since)
        items = []
        for sku in await forecast.lineup_skus(conn, stream_id):
            stock = await _stock(request, conn, sku.sku_id)
            units = recent.get(sku.sku_id, 0)
            minutes = max(window, forecast.MIN_WINDOW).total_seconds() / 60
            items.append(
                {
                    **sku.to_dict(),
                    "available": stock["available"],
                    "units_in_window": units,
                    "rate_per_minute": round(units / minutes, 3),
                    "sold_out_in_minutes": forecast.sell_out_minutes(
                        stock["available"], units, window
                    ),
                }
            )
    return web.json_response(
        {"window_seconds": int(window.total_seconds()), "skus": items, "at": at.isoformat()}
    )


async def get_reorder(request: web.Request) -> web.Response:
    """After (or during) a show: per lineup SKU, what sold, the sell-through and a reorder."""
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        await require_role(conn, stream_id, user.id, Role.CREATOR)
        sold = await forecast.units_ordered(conn, stream_id)
        items = []
        for sku in await forecast.lineup_skus(conn, stream_id):
            left = (await _stock(request, conn, sku.sku_id))["available"]
            units = sold.get(sku.sku_id, 0)
            items.append(
                {
                    **sku.to_dict(),
                    "sold": units,
                    "left": left,
                    "sell_through": round(forecast.sell_through(units, left), 3),
                    "reorder": forecast.reorder_units(units, left),
                }
            )
    return web.json_response({"skus": items})


_SKU = r"/api/skus/{id:\d+}"
_STREAM = r"/api/streams/{id:\d+}"
OPERATIONS = (
    Operation(
        "POST",
        f"{_SKU}/adjustments",
        post_adjustment,
        "Adjust a SKU's stock on hand with a reason; never below the units buyers hold "
        "(owner only)",
        "inventory",
        body=NewAdjustment,
        auth=True,
        status=201,
        errors=(409,),
    ),
    Operation(
        "GET",
        f"{_SKU}/adjustments",
        get_adjustments,
        "A SKU's stock audit log, newest first (owner only)",
        "inventory",
        query=AuditQuery,
        auth=True,
    ),
    Operation(
        "PUT",
        f"{_SKU}/low-stock",
        put_low_stock,
        "Set or clear a SKU's low-stock alert threshold (owner only)",
        "inventory",
        body=LowStockThreshold,
        auth=True,
    ),
    Operation(
        "GET",
        "/api/inventory",
        get_inventory,
        "Your SKUs with units on hand, held and free, and their low-stock state",
        "inventory",
        auth=True,
    ),
    Operation(
        "GET",
        f"{_STREAM}/forecast",
        get_forecast,
        "Per lineup SKU: recent sales rate and minutes to sell out (creator or moderator)",
        "inventory",
        auth=True,
    ),
    Operation(
        "GET",
        f"{_STREAM}/reorder",
        get_reorder,
        "Per lineup SKU: units sold in the show, sell-through and a reorder suggestion "
        "(creator only)",
        "inventory",
        auth=True,
    ),
)

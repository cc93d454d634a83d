"""The order desk: what a seller (or their stream's team) has to pack, ship and take back.

Paid orders are grouped into the parcels they will make: one per buyer, show and shipping
address (see ``fulfillment.address_key``). Each order has a ship-by deadline, ``paid_at`` plus
the shop's ``ship_by_days`` (3 without a shop_settings row); a paid or packed order past it is
late. The pick list sums the units to pack per SKU; the CSV export has one row per packed parcel
for a carrier's bulk label tool.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.orders.fulfillment import address_key, desk_scope, get_parcel
from livecommerce.orders.orders import Order, OrderStatus, order_from_row
from livecommerce.platform.db.tables import (
    orders,
    parcels,
    products,
    shop_settings,
    skus,
    streams,
    users,
    utcnow,
)

S = OrderStatus
DEFAULT_SHIP_BY_DAYS = 3
DESK_LIMIT = 500  # paid orders (and CSV parcels) one desk view reads at most
PARCELS_SHOWN = 100  # the newest parcels a desk view shows
CSV_COLUMNS = (
    "name",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "phone",
    "items",
    "reference",
)


async def ship_by_days(conn: AsyncConnection, seller_ids: set[int]) -> dict[int, int]:
    rows = await conn.execute(
        sa.select(shop_settings.c.seller_id, shop_settings.c.ship_by_days).where(
            shop_settings.c.seller_id.in_(seller_ids)
        )
    )
    days = {seller: DEFAULT_SHIP_BY_DAYS for seller in seller_ids}
    days.update({int(seller): int(d) for seller, d in rows})
    return days


def ship_by(order: Order, days: int) -> datetime | None:
    return order.paid_at + timedelta(days=days) if order.paid_at else None


def is_late(order: Order, deadline: datetime | None, now: datetime) -> bool:
    return order.status in (S.PAID, S.PACKED) and deadline is not None and now > deadline


@dataclass(frozen=True)
class Line:
    """What one order puts in a box: the product, the variant, the units."""

    sku: str
    title: str
    attributes: dict[str, Any]

    def label(self, qty: int) -> str:
        variant = ", ".join(f"{k}: {v}" for k, v in sorted(self.attributes.items()))
        return f"{qty} x {self.title}" + (f" ({variant})" if variant else "") + f" [{self.sku}]"


async def lines(conn: AsyncConnection, sku_ids: set[int]) -> dict[int, Line]:
    if not sku_ids:
        return {}
    rows = await conn.execute(
        sa.select(skus.c.id, skus.c.code, skus.c.attributes, products.c.title)
        .join(products, products.c.id == skus.c.product_id)
        .where(skus.c.id.in_(sku_ids))
    )
    return {int(r.id): Line(r.code, r.title, dict(r.attributes or {})) for r in rows}


async def buyers(conn: AsyncConnection, buyer_ids: set[int]) -> dict[int, str]:
    if not buyer_ids:
        return {}
    rows = await conn.execute(
        sa.select(users.c.id, users.c.display_name).where(users.c.id.in_(buyer_ids))
    )
    return {int(i): str(name) for i, name in rows}


def _scoped(user_id: int, stream_id: int | None) -> sa.Select[Any]:
    query = sa.select(orders).where(desk_scope(user_id))
    if stream_id is not None:
        query = query.where(orders.c.stream_id == stream_id)
    return query


async def desk(conn: AsyncConnection, user_id: int, stream_id: int | None) -> dict[str, Any]:
    """The desk as JSON: parcels to pack (grouped paid orders), parcels made, the shows."""
    now = utcnow()
    paid = [
        order_from_row(r)
        for r in await conn.execute(
            _scoped(user_id, stream_id)
            .where(orders.c.status == S.PAID.value)
            .order_by(orders.c.id)
            .limit(DESK_LIMIT)
        )
    ]
    parcel_query = (
        sa.select(parcels.c.id)
        .where(parcels.c.id.in_(sa.select(orders.c.parcel_id).where(desk_scope(user_id))))
        .order_by(parcels.c.id.desc())
        .limit(PARCELS_SHOWN)
    )
    if stream_id is not None:
        parcel_query = parcel_query.where(parcels.c.stream_id == stream_id)
    made_parcels = [
        await get_parcel(conn, int(i)) for i in (await conn.execute(parcel_query)).scalars()
    ]
    found = paid + [o for p in made_parcels for o in p.orders]
    days = await ship_by_days(conn, {o.seller_id for o in found})
    items = await lines(conn, {o.sku_id for o in found})
    names = await buyers(conn, {o.buyer_id for o in found})

    def order_view(order: Order) -> dict[str, Any]:
        deadline = ship_by(order, days[order.seller_id])
        line = items.get(order.sku_id)
        return {
            **order.to_dict(),
            "item": line.label(order.qty) if line else f"{order.qty} x SKU {order.sku_id}",
            "buyer_name": names.get(order.buyer_id, ""),
            "ship_by": deadline.isoformat() if deadline else None,
            "late": is_late(order, deadline, now),
        }

    groups: dict[tuple[Any, ...], list[Order]] = {}
    for order in paid:
        key = (
            order.seller_id,
            order.stream_id,
            order.buyer_id,
            address_key(order.shipping_address),
        )
        groups.setdefault(key, []).append(order)
    to_pack = []
    for members in groups.values():
        views = [order_view(o) for o in members]
        deadlines = [v["ship_by"] for v in views if v["ship_by"]]
        first = members[0]
        to_pack.append(
            {
                "buyer_id": first.buyer_id,
                "buyer_name": names.get(first.buyer_id, ""),
                "stream_id": first.stream_id,
                "shipping_address": first.shipping_address,
                "ship_by": min(deadlines) if deadlines else None,
                "late": any(v["late"] for v in views),
                "orders": views,
            }
        )
    to_pack.sort(key=lambda g: (not g["late"], g["ship_by"] or ""))
    made = []
    for parcel in made_parcels:
        views = [order_view(o) for o in parcel.orders]
        made.append(
            {
                **parcel.to_dict(),
                "buyer_name": names.get(parcel.buyer_id, ""),
                "orders": views,
                "late": any(v["late"] for v in views),
            }
        )
    return {
        "stream_id": stream_id,
        "shows": await shows(conn, user_id),
        "to_pack": to_pack,
        "parcels": made,
        "late": sum(1 for g in to_pack if g["late"]) + sum(1 for p in made if p["late"]),
    }


async def shows(conn: AsyncConnection, user_id: int) -> list[dict[str, Any]]:
    """The shows that have orders on this desk, newest first."""
    rows = await conn.execute(
        sa.select(streams.c.id, streams.c.title, streams.c.status)
        .where(
            streams.c.id.in_(
                sa.select(orders.c.stream_id).where(
                    desk_scope(user_id), orders.c.status != S.RESERVED.value
                )
            )
        )
        .order_by(streams.c.id.desc())
        .limit(200)
    )
    return [{"id": i, "title": t, "status": s} for i, t, s in rows]


async def pick_list(
    conn: AsyncConnection, user_id: int, stream_id: int | None
) -> list[dict[str, Any]]:
    """Units to take off the shelf for the paid orders not yet packed, per SKU."""
    rows = await conn.execute(
        sa.select(orders.c.sku_id, sa.func.sum(orders.c.qty), sa.func.count())
        .where(
            desk_scope(user_id),
            orders.c.status == S.PAID.value,
            *([orders.c.stream_id == stream_id] if stream_id is not None else []),
        )
        .group_by(orders.c.sku_id)
    )
    totals = [(int(sku), int(units), int(count)) for sku, units, count in rows]
    items = await lines(conn, {sku for sku, _u, _c in totals})
    picks = []
    for sku_id, units, count in totals:
        line = items.get(sku_id)
        picks.append(
            {
                "sku_id": sku_id,
                "sku": line.sku if line else "",
                "title": line.title if line else "",
                "variant": line.attributes if line else {},
                "qty": units,
                "orders": count,
            }
        )
    picks.sort(key=lambda p: (p["title"], p["sku"]))
    return picks


async def export_csv(conn: AsyncConnection, user_id: int, stream_id: int | None) -> str:
    """Packed parcels, one row each, for a carrier's bulk label tool (no weights)."""
    query = (
        sa.select(parcels.c.id)
        .where(
            parcels.c.status == "packed",
            parcels.c.id.in_(sa.select(orders.c.parcel_id).where(desk_scope(user_id))),
        )
        .order_by(parcels.c.id)
        .limit(DESK_LIMIT)
    )
    if stream_id is not None:
        query = query.where(parcels.c.stream_id == stream_id)
    ids = [int(i) for i in (await conn.execute(query)).scalars()]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for parcel_id in ids:
        parcel = await get_parcel(conn, parcel_id)
        items = await lines(conn, {o.sku_id for o in parcel.orders})
        names = await buyers(conn, {parcel.buyer_id})
        address = parcel.shipping_address or {}
        described = "; ".join(
            items[o.sku_id].label(o.qty) if o.sku_id in items else f"{o.qty} x SKU {o.sku_id}"
            for o in parcel.orders
        )
        writer.writerow(
            [
                _cell(address.get("name") or names.get(parcel.buyer_id, "")),
                _cell(address.get("line1")),
                _cell(address.get("line2")),
                _cell(address.get("city")),
                _cell(address.get("region")),
                _cell(address.get("postal_code")),
                _cell(address.get("country")),
                _phone(address.get("phone")),
                _cell(described),
                f"P{parcel.id}-" + "-".join(str(o.id) for o in parcel.orders),
            ]
        )
    return out.getvalue()


def _phone(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if re.fullmatch(r"\+?[0-9 ().-]*", text) else _cell(text)


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

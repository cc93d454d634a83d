"""Orders and their state machine, in SQL (the system of record)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.errors import ErrorCode, LiveCommerceError, NotFound
from livecommerce.orders.carriers import carrier_name, tracking_url
from livecommerce.platform.db.tables import orders, products, skus, utcnow

MAX_QTY = 10  # the most units one order may take


class OrderStatus(StrEnum):
    RESERVED = "reserved"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FULFILLED = "fulfilled"
    PACKED = "packed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    RETURN_REQUESTED = "return_requested"
    RETURN_APPROVED = "return_approved"
    REFUNDED = "refunded"


S = OrderStatus

# Where each status may go next. Anything else is refused with ``invalid_transition``.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RESERVED: frozenset({S.PAID, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.PAID: frozenset({S.PACKED, S.FULFILLED, S.RETURN_REQUESTED, S.REFUNDED}),
    S.PACKED: frozenset({S.SHIPPED, S.REFUNDED}),
    S.FULFILLED: frozenset({S.SHIPPED, S.RETURN_REQUESTED, S.REFUNDED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.RETURN_REQUESTED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.RETURN_REQUESTED, S.REFUNDED}),
    # A return: approved or refused (back to delivered); once received, refunded (all of it)
    # or delivered again (some units; the rest may still come back within the window).
    S.RETURN_REQUESTED: frozenset({S.RETURN_APPROVED, S.REFUNDED, S.DELIVERED}),
    S.RETURN_APPROVED: frozenset({S.REFUNDED, S.DELIVERED}),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}

# The statuses in which the order's units are held (not yet sold, not yet back on the shelf).
HOLDING = frozenset({S.RESERVED})
# The statuses in which the units are sold.
SOLD = frozenset(
    {
        S.PAID,
        S.PACKED,
        S.FULFILLED,
        S.SHIPPED,
        S.DELIVERED,
        S.RETURN_REQUESTED,
        S.RETURN_APPROVED,
    }
)


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION,
            f"a {current.value} order cannot become {target.value}",
            status=current.value,
        )


@dataclass(frozen=True)
class Order:
    id: int
    buyer_id: int
    seller_id: int
    sku_id: int
    stream_id: int | None
    qty: int
    unit_price_minor: int
    amount_minor: int
    currency: str
    sale_id: str | None
    status: OrderStatus
    hold_id: str
    idempotency_key: str
    payment_intent_id: str | None
    payment_status: str | None
    failure_code: str | None
    failure_message: str | None
    refunded_minor: int
    restocked_qty: int
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    shipping_address: dict[str, Any] | None = None
    shipping_minor: int = 0
    tax_minor: int = 0
    parcel_id: int | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None

    @property
    def goods_minor(self) -> int:
        return self.unit_price_minor * self.qty

    @property
    def added_tax_minor(self) -> int:
        """The tax the amount adds on top of the goods (0 where prices include it)."""
        return self.amount_minor - self.goods_minor - self.shipping_minor

    item_name: str | None = None  # the product and its variant when bought ("Hoodie (M)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "sku_id": self.sku_id,
            "item_name": self.item_name,
            "buyer_id": self.buyer_id,
            "stream_id": self.stream_id,
            "qty": self.qty,
            "unit_price": {"amount": self.unit_price_minor, "currency": self.currency},
            "amount": {"amount": self.amount_minor, "currency": self.currency},
            "refunded": {"amount": self.refunded_minor, "currency": self.currency},
            "restocked_qty": self.restocked_qty,
            "flash_sale": self.sale_id,
            "payment_status": self.payment_status,
            "failure": {"code": self.failure_code, "message": self.failure_message}
            if self.failure_code
            else None,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "paid_at": self.paid_at.isoformat() if self.paid_at else None,
            "goods": {"amount": self.goods_minor, "currency": self.currency},
            "shipping": {"amount": self.shipping_minor, "currency": self.currency},
            "tax": {"amount": self.tax_minor, "currency": self.currency},
            # Tax inside the goods' prices (shown, not added) unless the amount adds it.
            "tax_included": self.amount_minor == self.goods_minor + self.shipping_minor,
            "shipping_address": self.shipping_address,
            "parcel_id": self.parcel_id,
            "carrier": self.carrier,
            "carrier_name": carrier_name(self.carrier),
            "tracking": self.tracking_number,
            "tracking_url": tracking_url(self.carrier, self.tracking_number),
            "shipped_at": self.shipped_at.isoformat() if self.shipped_at else None,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


def _order(row: sa.Row[Any]) -> Order:
    m = dict(row._mapping)
    m.pop("updated_at", None)
    m["status"] = OrderStatus(m["status"])
    return Order(**m)


def order_from_row(row: sa.Row[Any]) -> Order:
    """An ``Order`` from a row of ``orders`` read by another module of this package."""
    return _order(row)


async def insert_order(conn: AsyncConnection, **values: Any) -> Order:
    now = utcnow()
    row = (
        await conn.execute(
            orders.insert()
            .values(
                status=S.RESERVED.value, created_at=now, updated_at=now, refunded_minor=0, **values
            )
            .returning(*orders.c)
        )
    ).one()
    return _order(row)


async def insert_orders(conn: AsyncConnection, many: list[dict[str, Any]]) -> list[Order]:
    """Insert several ``reserved`` orders in one statement; rows come back in the same order.

    Matched back by ``hold_id`` (unique), not by asking SQLAlchemy to keep the parameters'
    order: on SQLite that sends one INSERT per row, each a thread hop on a busy event loop.
    On PostgreSQL the rows go as one array per column (``unnest``): the same statement text
    whatever the batch's size, so it is prepared once per connection, where a multi-row
    ``VALUES`` list is a new statement (parsed, planned and described again) for each size.
    """
    rows = _new_rows(many)
    if conn.dialect.name == "postgresql" and all(row.keys() == rows[0].keys() for row in rows):
        by_hold = await _insert_unnested(conn, rows)
    else:
        result = await conn.execute(orders.insert().returning(*orders.c), rows)
        by_hold = {row.hold_id: _order(row) for row in result}
    return [by_hold[values["hold_id"]] for values in many]


def insert_orders_blocking(conn: sa.Connection, many: list[dict[str, Any]]) -> list[Order]:
    """``insert_orders`` on a blocking connection (run in a thread of its own)."""
    result = conn.execute(orders.insert().returning(*orders.c), _new_rows(many))
    by_hold = {row.hold_id: _order(row) for row in result}
    return [by_hold[values["hold_id"]] for values in many]


def _new_rows(many: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = utcnow()
    fixed = {"status": S.RESERVED.value, "created_at": now, "updated_at": now, "refunded_minor": 0}
    return [{**fixed, **values} for values in many]


# What a new row holds in a column the insert leaves out: the column's server default (all
# such defaults are integers), else NULL.
_SERVER_DEFAULTS = {
    c.name: int(str(c.server_default.arg))  # type: ignore[attr-defined]
    for c in orders.c
    if c.server_default is not None
}
_ORDER_FIELDS = tuple(f.name for f in fields(Order))


async def _insert_unnested(conn: AsyncConnection, rows: list[dict[str, Any]]) -> dict[str, Order]:
    """One INSERT of every row; the database hands back only the ids it gave, and each
    ``Order`` is built from the values sent (and the defaults of the columns left out), as a
    read of the row would give it: a crowd's orders cost no per-column decoding."""
    dialect = conn.dialect
    names = list(rows[0])
    arrays = []
    for name in names:
        process = orders.c[name].type.bind_processor(dialect)
        column = [row[name] for row in rows]
        arrays.append(column if process is None else [process(value) for value in column])
    casts = ", ".join(
        f"${i}::{orders.c[name].type.compile(dialect=dialect)}[]" for i, name in enumerate(names, 1)
    )
    sql = (
        f"INSERT INTO orders ({', '.join(names)}) SELECT * FROM unnest({casts}) "
        "RETURNING id, hold_id"
    )
    result = await conn.exec_driver_sql(sql, tuple(arrays))
    returned = cast("list[tuple[int, str]]", result.all())
    ids = {hold_id: order_id for order_id, hold_id in returned}
    left_out = {
        name: _SERVER_DEFAULTS.get(name)
        for name in _ORDER_FIELDS
        if name not in rows[0] and name != "id"
    }
    by_hold: dict[str, Order] = {}
    for row in rows:
        values = {**row, **left_out}
        del values["updated_at"]
        hold_id = values["hold_id"]
        values["status"] = OrderStatus(values["status"])
        by_hold[hold_id] = Order(id=ids[hold_id], **values)
    return by_hold


async def get_order(conn: AsyncConnection, order_id: int) -> Order:
    row = (await conn.execute(sa.select(orders).where(orders.c.id == order_id))).one_or_none()
    if row is None:
        raise NotFound("order")
    return _order(row)


async def find_order(conn: AsyncConnection, **where: Any) -> Order | None:
    query = sa.select(orders)
    for column, value in where.items():
        query = query.where(orders.c[column] == value)
    row = (await conn.execute(query)).one_or_none()
    return _order(row) if row is not None else None


async def orders_by_hold(conn: AsyncConnection, hold_ids: list[str]) -> dict[str, Order]:
    if not hold_ids:
        return {}
    rows = await conn.execute(sa.select(orders).where(orders.c.hold_id.in_(hold_ids)))
    return {o.hold_id: o for o in map(_order, rows)}


async def list_orders(
    conn: AsyncConnection,
    *,
    buyer_id: int | None = None,
    seller_id: int | None = None,
    stream_id: int | None = None,
    status: OrderStatus | None = None,
    sku_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Order]:
    query = sa.select(orders).order_by(orders.c.id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(orders.c.status == status.value)
    if sku_id is not None:
        query = query.where(orders.c.sku_id == sku_id)
    if buyer_id is not None:
        query = query.where(orders.c.buyer_id == buyer_id)
    if seller_id is not None:
        query = query.where(orders.c.seller_id == seller_id)
    if stream_id is not None:
        query = query.where(orders.c.stream_id == stream_id)
    return [_order(r) for r in await conn.execute(query)]


async def items(conn: AsyncConnection, sku_ids: set[int]) -> dict[int, dict[str, Any]]:
    """What each SKU is, for showing orders: product id, title, image and variant attributes."""
    if not sku_ids:
        return {}
    rows = await conn.execute(
        sa.select(
            skus.c.id,
            skus.c.product_id,
            skus.c.attributes,
            products.c.title,
            products.c.image_url,
        )
        .join(products, products.c.id == skus.c.product_id)
        .where(skus.c.id.in_(sku_ids))
    )
    return {
        row.id: {
            "product_id": row.product_id,
            "title": row.title,
            "image_url": row.image_url,
            "attributes": row.attributes,
        }
        for row in rows
    }


async def move(
    conn: AsyncConnection,
    order: Order,
    target: OrderStatus,
    **values: Any,
) -> Order | None:
    """Move ``order`` to ``target`` if it is still in the status we read.

    A conditional UPDATE makes each transition happen exactly once however many processes,
    webhooks and reapers race for it: the loser gets ``None`` and must re-read.
    """
    check_transition(order.status, target)
    row = (
        await conn.execute(
            orders.update()
            .where(orders.c.id == order.id, orders.c.status == order.status.value)
            .values(status=target.value, updated_at=utcnow(), **values)
            .returning(*orders.c)
        )
    ).one_or_none()
    return _order(row) if row is not None else None


async def expire_unpaid(conn: AsyncConnection, order_ids: list[int]) -> list[Order]:
    """reserved → expired for every listed order that is still reserved and has no payment
    started (those need their PaymentIntent cancelled first, one by one). One UPDATE; returns
    the orders this call moved, so each moves exactly once whoever else races for it."""
    if not order_ids:
        return []
    rows = await conn.execute(
        orders.update()
        .where(
            orders.c.id.in_(order_ids),
            orders.c.status == S.RESERVED.value,
            orders.c.payment_intent_id.is_(None),
        )
        .values(
            status=S.EXPIRED.value,
            updated_at=utcnow(),
            failure_code="expired",
            failure_message="the hold expired",
        )
        .returning(*orders.c)
    )
    return [_order(r) for r in rows]


async def set_payment(conn: AsyncConnection, order_id: int, **values: Any) -> None:
    await conn.execute(
        orders.update().where(orders.c.id == order_id).values(updated_at=utcnow(), **values)
    )


async def held_by_sku(conn: AsyncConnection, sku_id: int) -> list[Order]:
    rows = await conn.execute(
        sa.select(orders).where(orders.c.sku_id == sku_id, orders.c.status == S.RESERVED.value)
    )
    return [_order(r) for r in rows]


async def sold_qty(conn: AsyncConnection, sku_id: int) -> int:
    total = (
        await conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(orders.c.qty), 0)).where(
                orders.c.sku_id == sku_id, orders.c.status.in_([s.value for s in SOLD])
            )
        )
    ).scalar_one()
    return int(total)


async def overdue(conn: AsyncConnection, cutoff: datetime, limit: int = 200) -> list[Order]:
    """Reserved orders whose hold expired before ``cutoff``."""
    rows = await conn.execute(
        sa.select(orders)
        .where(orders.c.status == S.RESERVED.value, orders.c.expires_at < cutoff)
        .order_by(orders.c.expires_at)
        .limit(limit)
    )
    return [_order(r) for r in rows]


async def stream_sales(conn: AsyncConnection, stream_id: int) -> dict[str, Any]:
    """A shopstream's sales so far, by order status: orders, units and amount per currency."""
    rows = await conn.execute(
        sa.select(
            orders.c.status,
            orders.c.currency,
            sa.func.count(),
            sa.func.sum(orders.c.qty),
            sa.func.sum(orders.c.amount_minor - orders.c.refunded_minor),
        )
        .where(orders.c.stream_id == stream_id)
        .group_by(orders.c.status, orders.c.currency)
    )
    by_status: dict[str, dict[str, Any]] = {}
    for status, currency, count, units, amount in rows:
        entry = by_status.setdefault(status, {"orders": 0, "units": 0, "amount": {}})
        entry["orders"] += int(count)
        entry["units"] += int(units or 0)
        entry["amount"][currency] = int(amount or 0)
    return {"stream_id": stream_id, "by_status": by_status}

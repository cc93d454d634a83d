"""Fulfillment: paid orders packed into parcels, shipped with a carrier, delivered.

A parcel carries the paid orders of one buyer, from one seller's show, to one shipping address
(consolidation: one box, one label, one postage). Packing, shipping and delivering act on the
parcel and move each of its orders through the order state machine (paid -> packed -> shipped ->
delivered) in the same transaction; a conditional UPDATE per step makes each happen once, so two
clicks on "ship" ship once and the second is refused with ``invalid_transition``.

Who may: the seller of the orders, or the team (creator, moderators) of the seller's own stream
the orders were sold in (the same people who may refund them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.accounts.roles import role_in_stream
from livecommerce.errors import ErrorCode, Forbidden, InvalidInput, LiveCommerceError, NotFound
from livecommerce.orders.carriers import carrier_key, carrier_name, tracking_url
from livecommerce.orders.orders import TRANSITIONS, Order, OrderStatus, move, order_from_row
from livecommerce.platform.db.tables import orders, parcels, stream_moderators, streams, utcnow

S = OrderStatus
MAX_PARCEL_ORDERS = 100

PARCEL_STEPS = {"packed": S.PACKED, "shipped": S.SHIPPED, "delivered": S.DELIVERED}
# A parcel's status and the one it may move to next.
PARCEL_NEXT = {"packed": "shipped", "shipped": "delivered", "delivered": None}


def address_key(address: dict[str, Any] | None) -> str:
    """The same address however it was typed (case, spaces): orders to it share a parcel."""
    if not address:
        return ""
    fields = ("name", "line1", "line2", "city", "region", "postal_code", "country")
    return json.dumps([" ".join(str(address.get(f) or "").lower().split()) for f in fields])


@dataclass(frozen=True)
class Parcel:
    id: int
    seller_id: int
    buyer_id: int
    stream_id: int | None
    shipping_address: dict[str, Any] | None
    status: str
    carrier: str | None
    tracking_number: str | None
    created_at: datetime
    shipped_at: datetime | None
    delivered_at: datetime | None
    orders: tuple[Order, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seller_id": self.seller_id,
            "buyer_id": self.buyer_id,
            "stream_id": self.stream_id,
            "shipping_address": self.shipping_address,
            "status": self.status,
            "carrier": self.carrier,
            "carrier_name": carrier_name(self.carrier),
            "tracking": self.tracking_number,
            "tracking_url": tracking_url(self.carrier, self.tracking_number),
            "packed_at": self.created_at.isoformat(),
            "shipped_at": self.shipped_at.isoformat() if self.shipped_at else None,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "order_ids": [o.id for o in self.orders],
        }


async def may_fulfil(
    conn: AsyncConnection, seller_id: int, stream_id: int | None, user_id: int
) -> bool:
    """The seller, or the team of the seller's own stream the order was sold in."""
    if user_id == seller_id:
        return True
    if stream_id is None:
        return False
    creator = (
        await conn.execute(sa.select(streams.c.creator_id).where(streams.c.id == stream_id))
    ).scalar_one_or_none()
    if creator != seller_id:
        return False
    return (await role_in_stream(conn, stream_id, user_id)).can_moderate


def desk_scope(user_id: int) -> sa.ColumnElement[bool]:
    """Orders ``user_id`` may fulfil, as a WHERE clause on ``orders`` (see ``may_fulfil``)."""
    team = sa.select(streams.c.id).where(
        streams.c.creator_id == orders.c.seller_id,
        sa.or_(
            streams.c.creator_id == user_id,
            streams.c.id.in_(
                sa.select(stream_moderators.c.stream_id).where(
                    stream_moderators.c.user_id == user_id
                )
            ),
        ),
    )
    return sa.or_(orders.c.seller_id == user_id, orders.c.stream_id.in_(team))


async def get_parcel(conn: AsyncConnection, parcel_id: int) -> Parcel:
    row = (await conn.execute(sa.select(parcels).where(parcels.c.id == parcel_id))).one_or_none()
    if row is None:
        raise NotFound("parcel")
    members = await conn.execute(
        sa.select(orders).where(orders.c.parcel_id == parcel_id).order_by(orders.c.id)
    )
    m = dict(row._mapping)
    m.pop("updated_at")
    return Parcel(**m, orders=tuple(order_from_row(r) for r in members))


async def visible_parcel(conn: AsyncConnection, parcel_id: int, user_id: int) -> Parcel:
    parcel = await get_parcel(conn, parcel_id)
    if not await may_fulfil(conn, parcel.seller_id, parcel.stream_id, user_id):
        raise Forbidden("only the seller or the team of the seller's stream may see this parcel")
    return parcel


def _check_consolidation(found: list[Order]) -> None:
    first = found[0]
    for order in found:
        if order.status is not S.PAID:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION,
                f"order {order.id} is {order.status.value}, only paid orders are packed",
                status=order.status.value,
                order_id=order.id,
            )
        same = (order.seller_id, order.buyer_id, order.stream_id) == (
            first.seller_id,
            first.buyer_id,
            first.stream_id,
        ) and address_key(order.shipping_address) == address_key(first.shipping_address)
        if not same:
            raise InvalidInput(
                "a parcel holds one buyer's orders of one show to one address", order_id=order.id
            )


async def pack(engine: AsyncEngine, order_ids: list[int], user_id: int) -> Parcel:
    """Pack paid orders into a new parcel: each moves paid -> packed, all or none."""
    ids = sorted(set(order_ids))
    if not 1 <= len(ids) <= MAX_PARCEL_ORDERS:
        raise InvalidInput(f"a parcel holds 1 to {MAX_PARCEL_ORDERS} orders")
    async with engine.begin() as conn:
        found = [
            order_from_row(r)
            for r in await conn.execute(sa.select(orders).where(orders.c.id.in_(ids)))
        ]
        if len(found) != len(ids):
            raise NotFound("order")
        first = found[0]
        if not await may_fulfil(conn, first.seller_id, first.stream_id, user_id):
            raise Forbidden("only the seller or the team of the seller's stream may pack")
        _check_consolidation(found)
        now = utcnow()
        parcel_id = (
            await conn.execute(
                parcels.insert()
                .values(
                    seller_id=first.seller_id,
                    buyer_id=first.buyer_id,
                    stream_id=first.stream_id,
                    shipping_address=first.shipping_address,
                    status="packed",
                    created_at=now,
                    updated_at=now,
                )
                .returning(parcels.c.id)
            )
        ).scalar_one()
        for order in found:
            if await move(conn, order, S.PACKED, parcel_id=parcel_id) is None:
                # Another click packed it first: nothing of this parcel is kept.
                raise LiveCommerceError(
                    ErrorCode.INVALID_TRANSITION,
                    f"order {order.id} was packed or changed meanwhile",
                    order_id=order.id,
                )
        return await get_parcel(conn, parcel_id)


async def advance(
    engine: AsyncEngine,
    parcel_id: int,
    user_id: int,
    target: str,
    *,
    carrier: str | None = None,
    tracking_number: str | None = None,
) -> Parcel:
    """Move a parcel (and each of its orders) to ``shipped`` or ``delivered``, once.

    Shipping names the carrier and the tracking number; both are copied onto each order, so the
    buyer's order JSON says how it travels.
    """
    async with engine.begin() as conn:
        parcel = await get_parcel(conn, parcel_id)
        if not await may_fulfil(conn, parcel.seller_id, parcel.stream_id, user_id):
            raise Forbidden("only the seller or the team of the seller's stream may ship")
        if PARCEL_NEXT[parcel.status] != target:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION,
                f"a {parcel.status} parcel cannot become {target}",
                status=parcel.status,
            )
        now = utcnow()
        values: dict[str, Any] = {"status": target, "updated_at": now}
        order_values: dict[str, Any] = {}
        if target == "shipped":
            assert carrier is not None and tracking_number is not None
            values |= {
                "carrier": carrier_key(carrier),
                "tracking_number": tracking_number,
                "shipped_at": now,
            }
            order_values = {
                "carrier": values["carrier"],
                "tracking_number": tracking_number,
                "shipped_at": now,
            }
        else:
            values["delivered_at"] = order_values["delivered_at"] = now
        moved = (
            await conn.execute(
                parcels.update()
                .where(parcels.c.id == parcel_id, parcels.c.status == parcel.status)
                .values(**values)
            )
        ).rowcount
        if moved != 1:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION, f"the parcel was {target} meanwhile", status=target
            )
        step = PARCEL_STEPS[target]
        for order in parcel.orders:
            if order.status is step or step not in TRANSITIONS[order.status]:
                # Refunded (or otherwise gone) meanwhile: it stays where it is.
                continue
            await move(conn, order, step, **order_values)
        return await get_parcel(conn, parcel_id)


def check_shipment(carrier: str, tracking_number: str) -> tuple[str, str]:
    carrier = " ".join(carrier.split())
    tracking_number = tracking_number.strip()
    if not carrier:
        raise InvalidInput("name the carrier")
    if not tracking_number:
        raise InvalidInput("give the tracking number")
    return carrier, tracking_number

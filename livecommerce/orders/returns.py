"""Returns: a buyer sends back some or all units of a delivered order within the shop's window.

A return's own state machine: requested -> approved (an RMA number and instructions) or refused
(with a reason); approved -> receiving (one "received" call claims it) -> received (refunded,
resellable units restocked), or back to approved when the refund could not be made. The order
moves with it: delivered -> return_requested -> return_approved -> refunded (every unit back) or
delivered (some units: the rest may still come back within the window); a refusal puts it back
to delivered. Each step is a conditional UPDATE, so racing calls move it once.

The refund itself is made by the payments package (``payments.returnreceipts``); this module
holds the policy, the rows and the transitions.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.errors import ErrorCode, Forbidden, InvalidInput, LiveCommerceError, NotFound
from livecommerce.orders.fulfillment import may_fulfil
from livecommerce.orders.orders import Order, OrderStatus, get_order, move
from livecommerce.platform.db.tables import order_returns, orders, shop_settings, utcnow

S = OrderStatus
DEFAULT_WINDOW_DAYS = 30
DEFAULT_FREE_RETURNS = True
OPEN = ("requested", "approved", "receiving")
COUNTED = (*OPEN, "received")  # units these returns take out of what may still come back
RETURN_NEXT: dict[str, frozenset[str]] = {
    "requested": frozenset({"approved", "refused"}),
    "approved": frozenset({"receiving"}),
    "receiving": frozenset({"received", "approved"}),
    "refused": frozenset(),
    "received": frozenset(),
}


@dataclass(frozen=True)
class ReturnPolicy:
    return_window_days: int
    free_returns: bool

    def to_dict(self) -> dict[str, Any]:
        return {"return_window_days": self.return_window_days, "free_returns": self.free_returns}


@dataclass(frozen=True)
class OrderReturn:
    id: int
    order_id: int
    buyer_id: int
    seller_id: int
    qty: int
    reason: str
    status: str
    rma: str | None
    instructions: str | None
    free_returns: bool | None
    refusal_reason: str | None
    resellable_qty: int | None
    refund_minor: int | None
    created_at: datetime
    decided_at: datetime | None
    received_at: datetime | None

    def to_dict(self, currency: str = "") -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "order_id": self.order_id,
            "qty": self.qty,
            "reason": self.reason,
            "status": self.status,
            "rma": self.rma,
            "instructions": self.instructions,
            "free_returns": self.free_returns,
            "refusal_reason": self.refusal_reason,
            "resellable_qty": self.resellable_qty,
            "refund": {"amount": self.refund_minor, "currency": currency}
            if self.refund_minor is not None
            else None,
            "created_at": when(self.created_at),
            "decided_at": when(self.decided_at),
            "received_at": when(self.received_at),
        }


def _return(row: sa.Row[Any]) -> OrderReturn:
    m = dict(row._mapping)
    m.pop("updated_at")
    return OrderReturn(**m)


async def policy(conn: AsyncConnection, seller_id: int) -> ReturnPolicy:
    row = (
        await conn.execute(
            sa.select(shop_settings.c.return_window_days, shop_settings.c.free_returns).where(
                shop_settings.c.seller_id == seller_id
            )
        )
    ).one_or_none()
    if row is None:
        return ReturnPolicy(DEFAULT_WINDOW_DAYS, DEFAULT_FREE_RETURNS)
    return ReturnPolicy(int(row[0]), bool(row[1]))


async def set_policy(engine: AsyncEngine, seller_id: int, new: ReturnPolicy) -> ReturnPolicy:
    """Write the seller's returns policy; the shop's other settings keep their values."""
    async with engine.begin() as conn:
        values = {**new.to_dict(), "updated_at": utcnow()}
        changed = (
            await conn.execute(
                shop_settings.update().where(shop_settings.c.seller_id == seller_id).values(values)
            )
        ).rowcount
        if not changed:
            await conn.execute(
                shop_settings.insert().values(
                    seller_id=seller_id,
                    shipping_flat_minor=0,
                    tax_mode="included",
                    tax_rate_bp=0,
                    ship_by_days=3,
                    **values,
                )
            )
        return await policy(conn, seller_id)


def return_by(order: Order, rules: ReturnPolicy) -> datetime | None:
    """The last moment a return may be asked for: delivery + the window."""
    if order.delivered_at is None:
        return None
    return order.delivered_at + timedelta(days=rules.return_window_days)


async def returns_of(conn: AsyncConnection, order_id: int) -> list[OrderReturn]:
    rows = await conn.execute(
        sa.select(order_returns)
        .where(order_returns.c.order_id == order_id)
        .order_by(order_returns.c.id)
    )
    return [_return(r) for r in rows]


async def get_return(conn: AsyncConnection, return_id: int) -> OrderReturn:
    row = (
        await conn.execute(sa.select(order_returns).where(order_returns.c.id == return_id))
    ).one_or_none()
    if row is None:
        raise NotFound("return")
    return _return(row)


def returnable_qty(order: Order, found: list[OrderReturn]) -> int:
    return order.qty - sum(r.qty for r in found if r.status in COUNTED)


async def request_return(
    engine: AsyncEngine, order_id: int, buyer_id: int, qty: int, reason: str
) -> tuple[Order, OrderReturn]:
    """The buyer asks to send ``qty`` units back: the order moves to ``return_requested``."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the units come back")
    async with engine.begin() as conn:
        order = await get_order(conn, order_id)
        if order.buyer_id != buyer_id:
            raise Forbidden("only the buyer may return this order")
        if order.status is not S.DELIVERED:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION,
                f"a {order.status.value} order cannot be returned (only a delivered one)",
                status=order.status.value,
            )
        rules = await policy(conn, order.seller_id)
        deadline = return_by(order, rules)
        if deadline is None or utcnow() > deadline:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION,
                "the return window has closed",
                status=order.status.value,
                return_by=deadline.isoformat() if deadline else None,
            )
        left = returnable_qty(order, await returns_of(conn, order.id))
        if not 1 <= qty <= left:
            raise InvalidInput(f"qty must be between 1 and {left}", returnable_qty=left)
        moved = await move(conn, order, S.RETURN_REQUESTED)
        if moved is None:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION, "the order changed meanwhile; look again"
            )
        now = utcnow()
        row = (
            await conn.execute(
                order_returns.insert()
                .values(
                    order_id=order.id,
                    buyer_id=order.buyer_id,
                    seller_id=order.seller_id,
                    qty=qty,
                    reason=reason,
                    status="requested",
                    created_at=now,
                    updated_at=now,
                )
                .returning(*order_returns.c)
            )
        ).one()
        return moved, _return(row)


async def _seller_step(
    conn: AsyncConnection, return_id: int, user_id: int
) -> tuple[OrderReturn, Order]:
    found = await get_return(conn, return_id)
    order = await get_order(conn, found.order_id)
    if not await may_fulfil(conn, order.seller_id, order.stream_id, user_id):
        raise Forbidden("only the seller or the team of the seller's stream may handle returns")
    return found, order


async def _step(
    conn: AsyncConnection, found: OrderReturn, target: str, **values: Any
) -> OrderReturn:
    if target not in RETURN_NEXT[found.status]:
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION,
            f"a {found.status} return cannot become {target}",
            status=found.status,
        )
    row = (
        await conn.execute(
            order_returns.update()
            .where(order_returns.c.id == found.id, order_returns.c.status == found.status)
            .values(status=target, updated_at=utcnow(), **values)
            .returning(*order_returns.c)
        )
    ).one_or_none()
    if row is None:
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION, "the return changed meanwhile; look again"
        )
    return _return(row)


def instructions(rma: str, free: bool, extra: str) -> str:
    postage = (
        "Free returns: use the prepaid return label we send you for this RMA; postage is on us."
        if free
        else "The buyer pays postage: send the parcel with the carrier of your choice."
    )
    text = (
        f"Write {rma} on the parcel, pack the units in their original packaging, "
        f"and send them back. {postage}"
    )
    return f"{text}\n{extra}" if extra else text


async def approve(
    engine: AsyncEngine, return_id: int, user_id: int, note: str
) -> tuple[Order, OrderReturn]:
    async with engine.begin() as conn:
        found, order = await _seller_step(conn, return_id, user_id)
        rules = await policy(conn, order.seller_id)
        rma = f"RMA-{order.id}-{secrets.token_hex(3).upper()}"
        approved = await _step(
            conn,
            found,
            "approved",
            rma=rma,
            free_returns=rules.free_returns,
            instructions=instructions(rma, rules.free_returns, note.strip()),
            decided_at=utcnow(),
        )
        moved = await move(conn, order, S.RETURN_APPROVED)
        if moved is None:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION, "the order changed meanwhile; look again"
            )
        return moved, approved


async def refuse(
    engine: AsyncEngine, return_id: int, user_id: int, reason: str
) -> tuple[Order, OrderReturn]:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the return is refused")
    async with engine.begin() as conn:
        found, order = await _seller_step(conn, return_id, user_id)
        refused = await _step(conn, found, "refused", refusal_reason=reason, decided_at=utcnow())
        moved = await move(conn, order, S.DELIVERED)
        if moved is None:
            raise LiveCommerceError(
                ErrorCode.INVALID_TRANSITION, "the order changed meanwhile; look again"
            )
        return moved, refused


async def claim_receipt(
    engine: AsyncEngine, return_id: int, user_id: int
) -> tuple[Order, OrderReturn]:
    """approved -> receiving: the one caller that wins makes the refund; others get 409."""
    async with engine.begin() as conn:
        found, order = await _seller_step(conn, return_id, user_id)
        return order, await _step(conn, found, "receiving")


async def release_receipt(engine: AsyncEngine, found: OrderReturn) -> None:
    """receiving -> approved: the refund failed, the seller may mark it received again."""
    async with engine.begin() as conn:
        await conn.execute(
            order_returns.update()
            .where(order_returns.c.id == found.id, order_returns.c.status == "receiving")
            .values(status="approved", updated_at=utcnow())
        )


async def finish_receipt(
    engine: AsyncEngine, found: OrderReturn, resellable_qty: int, refund_minor: int
) -> tuple[Order, OrderReturn]:
    """receiving -> received; an order not fully refunded goes back to delivered."""
    async with engine.begin() as conn:
        done = await _step(
            conn,
            found,
            "received",
            resellable_qty=resellable_qty,
            refund_minor=refund_minor,
            received_at=utcnow(),
        )
        order = await get_order(conn, found.order_id)
        if order.status is S.RETURN_APPROVED:
            order = await move(conn, order, S.DELIVERED) or await get_order(conn, order.id)
        return order, done


def refund_for(order: Order, found: list[OrderReturn], qty: int) -> int:
    """What ``qty`` returned units give back: every unit back (with this return) refunds all
    that is left, shipping included; fewer refund their price and their share of added tax
    (tax inside the prices is in the price already)."""
    left = order.amount_minor - order.refunded_minor
    back = sum(r.qty for r in found if r.status in COUNTED)
    if back >= order.qty:
        return left
    share = order.unit_price_minor * qty + order.added_tax_minor * qty // order.qty
    return min(share, left)


async def seller_returns(
    conn: AsyncConnection, scope: sa.ColumnElement[bool], status: str | None
) -> list[tuple[OrderReturn, str]]:
    """Returns of the orders in ``scope`` (the desk's), newest first, with their currency."""
    query = (
        sa.select(order_returns, orders.c.currency)
        .join(orders, orders.c.id == order_returns.c.order_id)
        .where(scope)
        .order_by(order_returns.c.id.desc())
        .limit(500)
    )
    if status is not None:
        query = query.where(order_returns.c.status == status)
    rows = await conn.execute(query)
    out = []
    for row in rows:
        m = dict(row._mapping)
        currency = m.pop("currency")
        m.pop("updated_at")
        out.append((OrderReturn(**m), str(currency)))
    return out

"""A seller's stock adjustments (received, damaged, lost, a count's correction...), each one
written to an audit trail with who, when, the delta, the reason and the units on hand after it.

An adjustment never takes the shelf below what buyers hold: the SKU's live counters are loaded
first, and the decrease goes through the same atomic Redis script as a buy (``adjust.lua``),
which refuses to take more than the free units. The SQL change is relative and, on PostgreSQL,
locks the SKU's row until it commits, so two adjustments at once are applied one after the
other and a refusal of either leaves nothing behind. (Sold units have already left
``stock_on_hand``: a paid order moves them off the shelf.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.errors import ErrorCode, InvalidInput, LiveCommerceError, NotFound
from livecommerce.inventory.rebuild import load_sku
from livecommerce.inventory.reservations import Reservations
from livecommerce.platform.db.tables import orders, skus, stock_adjustments, utcnow

log = logging.getLogger(__name__)

MAX_DELTA = 10**6


class Reason(StrEnum):
    RECEIVED = "received"
    DAMAGED = "damaged"
    LOST = "lost"
    COUNT_CORRECTION = "count_correction"
    RETURNED = "returned"
    OTHER = "other"


@dataclass(frozen=True)
class Adjustment:
    id: int
    sku_id: int
    actor_id: int
    delta: int
    reason: Reason
    note: str
    on_hand_after: int
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sku_id": self.sku_id,
            "actor_id": self.actor_id,
            "delta": self.delta,
            "reason": self.reason.value,
            "note": self.note,
            "on_hand_after": self.on_hand_after,
            "created_at": self.created_at.isoformat(),
        }


def _adjustment(m: Any) -> Adjustment:
    return Adjustment(
        id=m["id"],
        sku_id=m["sku_id"],
        actor_id=m["actor_id"],
        delta=m["delta"],
        reason=Reason(m["reason"]),
        note=m["note"],
        on_hand_after=m["on_hand_after"],
        created_at=m["created_at"],
    )


class BelowHeld(LiveCommerceError):
    def __init__(self, free: int) -> None:
        super().__init__(
            ErrorCode.CONFLICT,
            f"only {free} units are free; the rest are held by buyers or not there",
            available=free,
        )


async def held_units(conn: AsyncConnection, sku_id: int) -> int:
    """Units of ``sku_id`` held by reserved (unpaid) orders, as SQL knows them."""
    held = (
        await conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(orders.c.qty), 0)).where(
                orders.c.sku_id == sku_id, orders.c.status == "reserved"
            )
        )
    ).scalar_one()
    return int(held)


async def adjust_stock(
    engine: AsyncEngine,
    reservations: Reservations,
    sku_id: int,
    delta: int,
    reason: Reason,
    actor_id: int,
    note: str = "",
) -> Adjustment:
    """Move ``sku_id``'s units on hand by ``delta`` and record why. Refused with ``conflict``
    (and nothing changed) when it would take more units than are free; the caller checks that
    ``actor_id`` may (the catalog: the product's owner)."""
    if delta == 0 or abs(delta) > MAX_DELTA:
        raise InvalidInput(f"an adjustment moves between 1 and {MAX_DELTA} units")
    await load_sku(engine, reservations, sku_id)  # NotFound for no such SKU
    moved_live = False
    try:
        async with engine.begin() as conn:
            try:
                on_hand = (
                    await conn.execute(
                        skus.update()
                        .where(skus.c.id == sku_id)
                        .values(stock_on_hand=skus.c.stock_on_hand + delta)
                        .returning(skus.c.stock_on_hand)
                    )
                ).scalar_one_or_none()
            except IntegrityError:  # stock_not_negative
                raise BelowHeld(0) from None
            if on_hand is None:
                raise NotFound("SKU")
            # The row is ours until commit; the live counters check the holds atomically.
            free = await reservations.adjust(sku_id, delta)
            moved_live = free is not None
            if free is None:  # Redis lost the counters meanwhile: the holds are in SQL
                held = await held_units(conn, sku_id)
                if on_hand < held:
                    raise BelowHeld(max(on_hand - delta - held, 0))
            row = (
                await conn.execute(
                    stock_adjustments.insert()
                    .values(
                        sku_id=sku_id,
                        actor_id=actor_id,
                        delta=delta,
                        reason=reason.value,
                        note=note,
                        on_hand_after=on_hand,
                        created_at=utcnow(),
                    )
                    .returning(*stock_adjustments.c)
                )
            ).one()
            adjustment = _adjustment(row._mapping)
    except BaseException:
        if moved_live:  # SQL did not commit: the live counters go back
            try:
                await reservations.adjust(sku_id, -delta)
            except LiveCommerceError:
                log.error("stock adjustment undone in SQL only", extra={"sku_id": sku_id})
        raise
    return adjustment


async def record_count(
    engine: AsyncEngine, sku_id: int, actor_id: int, delta: int, on_hand_after: int
) -> None:
    """Log a count the seller set on the product itself (``PATCH /api/products/{id}``, whose
    ``set_on_hand`` and its live follow-up already ran) as a ``count_correction``."""
    if delta == 0:
        return
    async with engine.begin() as conn:
        await conn.execute(
            stock_adjustments.insert().values(
                sku_id=sku_id,
                actor_id=actor_id,
                delta=delta,
                reason=Reason.COUNT_CORRECTION.value,
                note="stock set on the product",
                on_hand_after=on_hand_after,
                created_at=utcnow(),
            )
        )


async def adjustments_of(
    conn: AsyncConnection, sku_ids: list[int], *, limit: int = 100, before: int | None = None
) -> list[Adjustment]:
    """The audit trail of these SKUs, newest first (``before``: an adjustment id, to page)."""
    if not sku_ids:
        return []
    query = (
        sa.select(stock_adjustments)
        .where(stock_adjustments.c.sku_id.in_(sku_ids))
        .order_by(stock_adjustments.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(stock_adjustments.c.id < before)
    return [_adjustment(row._mapping) for row in await conn.execute(query)]

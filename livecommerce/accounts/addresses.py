"""A buyer's saved shipping addresses: at most ``MAX_ADDRESSES``, one of them the default.

Only the owner reads or changes an address; another user's address answers ``not_found``
(not ``forbidden``), so ids reveal nothing. An order keeps a copy (``Address.snapshot``), so
editing or deleting a saved address never changes where a placed order ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.errors import ErrorCode, LiveCommerceError, NotFound
from livecommerce.platform.db.tables import addresses, utcnow

MAX_ADDRESSES = 20
FIELDS = ("name", "line1", "line2", "city", "region", "postal_code", "country", "phone")


@dataclass(frozen=True)
class Address:
    id: int
    user_id: int
    name: str
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2, upper case
    phone: str
    is_default: bool
    created_at: datetime
    updated_at: datetime

    def snapshot(self) -> dict[str, str]:
        """What an order keeps: the fields, not the id (the saved one may change or go)."""
        return {name: getattr(self, name) for name in FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.snapshot(), "is_default": self.is_default}


def _address(row: sa.Row[Any]) -> Address:
    return Address(**dict(row._mapping))


async def list_addresses(conn: AsyncConnection, user_id: int) -> list[Address]:
    rows = await conn.execute(
        sa.select(addresses)
        .where(addresses.c.user_id == user_id)
        .order_by(addresses.c.is_default.desc(), addresses.c.id)
    )
    return [_address(r) for r in rows]


async def get_address(conn: AsyncConnection, user_id: int, address_id: int) -> Address:
    row = (
        await conn.execute(
            sa.select(addresses).where(addresses.c.id == address_id, addresses.c.user_id == user_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("address")
    return _address(row)


async def default_address(conn: AsyncConnection, user_id: int) -> Address | None:
    """The default address, or the first saved one, or None."""
    found = await list_addresses(conn, user_id)
    return found[0] if found else None


async def _make_default(conn: AsyncConnection, user_id: int, address_id: int) -> None:
    await conn.execute(
        addresses.update()
        .where(addresses.c.user_id == user_id)
        .values(is_default=addresses.c.id == address_id)
    )


async def create_address(
    engine: AsyncEngine, user_id: int, fields: dict[str, str], *, make_default: bool = False
) -> Address:
    """Save an address; the first one saved is the default."""
    now = utcnow()
    async with engine.begin() as conn:
        count = (
            await conn.execute(sa.select(sa.func.count()).where(addresses.c.user_id == user_id))
        ).scalar_one()
        if count >= MAX_ADDRESSES:
            raise LiveCommerceError(
                ErrorCode.LIMIT_EXCEEDED, f"at most {MAX_ADDRESSES} addresses; delete one first"
            )
        address_id = (
            await conn.execute(
                addresses.insert()
                .values(user_id=user_id, is_default=False, created_at=now, updated_at=now, **fields)
                .returning(addresses.c.id)
            )
        ).scalar_one()
        if make_default or count == 0:
            await _make_default(conn, user_id, address_id)
        return await get_address(conn, user_id, address_id)


async def update_address(
    engine: AsyncEngine,
    user_id: int,
    address_id: int,
    changes: dict[str, str],
    *,
    make_default: bool = False,
) -> Address:
    async with engine.begin() as conn:
        await get_address(conn, user_id, address_id)  # the owner's, or not_found
        if changes:
            await conn.execute(
                addresses.update()
                .where(addresses.c.id == address_id)
                .values(updated_at=utcnow(), **changes)
            )
        if make_default:
            await _make_default(conn, user_id, address_id)
        return await get_address(conn, user_id, address_id)


async def delete_address(engine: AsyncEngine, user_id: int, address_id: int) -> None:
    """Delete; if it was the default, the oldest remaining address becomes the default."""
    async with engine.begin() as conn:
        gone = await get_address(conn, user_id, address_id)
        await conn.execute(addresses.delete().where(addresses.c.id == address_id))
        if gone.is_default:
            left = await list_addresses(conn, user_id)
            if left:
                await _make_default(conn, user_id, left[0].id)

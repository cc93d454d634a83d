"""A seller's shop terms: shipping, tax, ship-by and returns (the ``shop_settings`` row).

A seller without a row sells on the defaults: shipping free (flat 0), tax included in prices
(rate 0), ship within 3 days, returns within 30 days, free returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.platform.db.tables import shop_settings, utcnow
from livecommerce.platform.factcache import FactCache

MAX_MINOR = 10**9  # 10 million in a currency with cents: far above any shipping fee


class TaxMode(StrEnum):
    INCLUDED = "included"  # prices include tax; the included share is shown
    ADDED = "added"  # tax is added on top of prices at checkout


@dataclass(frozen=True)
class ShopTerms:
    """What a shop charges on top of its prices and promises after a sale. Amounts in minor
    units of the order's currency; ``tax_rate_bp`` in basis points (1% = 100)."""

    shipping_flat_minor: int = 0
    free_shipping_over_minor: int | None = None
    tax_mode: TaxMode = TaxMode.INCLUDED
    tax_rate_bp: int = 0
    ship_by_days: int = 3
    return_window_days: int = 30
    free_returns: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.shipping_flat_minor <= MAX_MINOR:
            raise ValueError("shipping_flat_minor must be between 0 and 10^9")
        if self.free_shipping_over_minor is not None and not (
            1 <= self.free_shipping_over_minor <= MAX_MINOR
        ):
            raise ValueError("free_shipping_over_minor must be between 1 and 10^9, or null")
        if not 0 <= self.tax_rate_bp <= 10_000:
            raise ValueError("tax_rate_bp must be between 0 and 10000")
        if not 0 <= self.ship_by_days <= 365 or not 0 <= self.return_window_days <= 365:
            raise ValueError("days must be between 0 and 365")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tax_mode": self.tax_mode.value}


DEFAULT_TERMS = ShopTerms()
_COLUMNS = tuple(f.name for f in fields(ShopTerms))


async def shop_terms(conn: AsyncConnection, seller_id: int) -> ShopTerms:
    row = (
        await conn.execute(
            sa.select(*(shop_settings.c[name] for name in _COLUMNS)).where(
                shop_settings.c.seller_id == seller_id
            )
        )
    ).one_or_none()
    if row is None:
        return DEFAULT_TERMS
    values = dict(row._mapping)
    values["tax_mode"] = TaxMode(values["tax_mode"])
    return ShopTerms(**values)


async def save_shop_terms(engine: AsyncEngine, seller_id: int, terms: ShopTerms) -> ShopTerms:
    """Insert or replace the seller's row (the last write wins)."""
    values = {**terms.to_dict(), "updated_at": utcnow()}
    for _ in range(2):  # two first saves may race for the insert: the loser updates
        try:
            async with engine.begin() as conn:
                updated = await conn.execute(
                    shop_settings.update()
                    .where(shop_settings.c.seller_id == seller_id)
                    .values(values)
                )
                if updated.rowcount != 1:
                    await conn.execute(shop_settings.insert().values(seller_id=seller_id, **values))
            return terms
        except IntegrityError:
            continue
    return terms


class ShopTermsCache:
    """A per-process cache of shop terms, so a buy costs no extra SQL read. A change is seen
    here at once when saved through ``save``; other processes see it within ``ttl_s``.

    A crowd never waits for the read: an entry near its end is renewed in the background, and
    the buyers who find it gone share one read."""

    def __init__(self, engine: AsyncEngine, ttl_s: float = 5.0) -> None:
        self._engine = engine
        self._terms = FactCache(self._read, ttl_s, "shop terms", limit=10_000)
        self.reads = 0  # SQL reads made (for tests)

    async def get(self, seller_id: int, *, fresh: bool = False) -> ShopTerms:
        """The seller's terms; ``fresh``: read SQL now (the seller's own settings page)."""
        if fresh:
            return await self._terms.read_now(seller_id)
        return await self._terms.get(seller_id)

    async def _read(self, seller_id: int) -> ShopTerms:
        self.reads += 1
        async with self._engine.connect() as conn:
            return await shop_terms(conn, seller_id)

    async def save(self, seller_id: int, terms: ShopTerms) -> ShopTerms:
        self._terms.forget(seller_id)  # a read under way is not kept: it may predate the save
        saved = await save_shop_terms(self._engine, seller_id, terms)
        self._terms.forget(seller_id)
        return saved

    async def close(self) -> None:
        """Stop the reads under way; safe to call twice."""
        await self._terms.close()


SHOP_TERMS = web.AppKey("shop_terms", ShopTermsCache)

"""The seller's low-stock email: which SKU of which product, and how many units are left."""

from __future__ import annotations

import html

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.inventory.lowstock import LowStock
from livecommerce.platform.db.tables import products, skus, users
from livecommerce.platform.mail import Email, Mailer


class LowStockMail:
    """Handed to the inventory's `LowStockWatcher` as its ``notify``."""

    def __init__(self, engine: AsyncEngine, mailer: Mailer, public_url: str) -> None:
        self._engine = engine
        self._mailer = mailer
        self._public_url = public_url.rstrip("/")

    async def __call__(self, alert: LowStock) -> None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(skus.c.code, products.c.title, users.c.email)
                    .join(products, products.c.id == skus.c.product_id)
                    .join(users, users.c.id == products.c.owner_id)
                    .where(skus.c.id == alert.sku_id)
                )
            ).one_or_none()
        if row is None:
            return
        link = f"{self._public_url}/studio/catalog"
        units = "unit" if alert.available == 1 else "units"
        text = (
            f"{row.title} ({row.code}) is running low: {alert.available} {units} left, "
            f"at or below your alert level of {alert.threshold}.\n\n"
            f"Restock it from your catalog: {link}\n"
        )
        page = (
            f"<p><b>{html.escape(row.title)}</b> ({html.escape(row.code)}) is running low: "
            f"{alert.available} {units} left, at or below your alert level of "
            f'{alert.threshold}.</p><p><a href="{html.escape(link)}">Open your catalog</a></p>'
        )
        subject = f"Low stock: {row.title} ({row.code})"[:200]
        self._mailer.send_soon(Email(row.email, subject, text, html=page))

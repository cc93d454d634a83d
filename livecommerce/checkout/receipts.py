"""The order confirmation email: sent to the buyer once, when their order is paid.

Subscribed to ``OrderChanged`` by the composition root; the claim row (``platform.notices``)
makes it once per order whichever process, webhook or retry saw the payment.
"""

from __future__ import annotations

import html
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.events.orders import OrderChanged
from livecommerce.orders.orders import Order, OrderStatus, get_order
from livecommerce.platform.db.tables import products, skus, users
from livecommerce.platform.mail import Email, Mailer
from livecommerce.platform.notices import claim_notice

log = logging.getLogger(__name__)


def money(amount: int, currency: str) -> str:
    """``4900, "USD"`` -> ``"49.00 USD"`` (two-decimal currencies; others as minor units)."""
    if currency.upper() in ("JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"):
        return f"{amount} {currency}"
    return f"{amount // 100}.{amount % 100:02d} {currency}"


def address_lines(address: dict[str, str] | None) -> list[str]:
    if not address:
        return []
    city = " ".join(p for p in (address.get("postal_code", ""), address.get("city", "")) if p)
    lines = [
        address.get("name", ""),
        address.get("line1", ""),
        address.get("line2", ""),
        ", ".join(p for p in (city, address.get("region", "")) if p),
        address.get("country", ""),
        address.get("phone", ""),
    ]
    return [line for line in lines if line]


class Receipts:
    def __init__(self, engine: AsyncEngine, mailer: Mailer, public_url: str) -> None:
        self._engine = engine
        self._mailer = mailer
        self._public_url = public_url.rstrip("/")

    async def order_changed(self, event: OrderChanged) -> None:
        """Subscriber: on ``paid``, claim the receipt and queue its email."""
        if event.status != OrderStatus.PAID.value:
            return
        if not await claim_notice(self._engine, "receipt", event.order_id, event.buyer_id):
            return
        async with self._engine.connect() as conn:
            order = await get_order(conn, event.order_id)
            row = (
                await conn.execute(
                    sa.select(users.c.email, products.c.title, skus.c.attributes)
                    .select_from(skus.join(products, products.c.id == skus.c.product_id))
                    .join(users, users.c.id == order.buyer_id)
                    .where(skus.c.id == order.sku_id)
                )
            ).one()
        self._mailer.send_soon(self.email(order, row.email, row.title, dict(row.attributes)))

    def email(self, order: Order, to: str, title: str, attributes: dict[str, str]) -> Email:
        c = order.currency
        variant = ", ".join(f"{k}: {v}" for k, v in attributes.items())
        item = f"{order.qty} x {title}" + (f" ({variant})" if variant else "")
        tax_label = (
            "Tax (included)"
            if order.amount_minor == order.goods_minor + order.shipping_minor
            else "Tax"
        )
        rows = [
            (item, money(order.goods_minor, c)),
            ("Shipping", money(order.shipping_minor, c) if order.shipping_minor else "free"),
            (tax_label, money(order.tax_minor, c)),
            ("Total paid", money(order.amount_minor, c)),
        ]
        link = f"{self._public_url}/orders/{order.id}"
        ship = address_lines(order.shipping_address)
        width = max(len(label) for label, _ in rows) + 2
        text = "\n".join(
            [
                f"Thank you for your order #{order.id}.",
                "",
                *(f"{label.ljust(width)}{value}" for label, value in rows),
                "",
                *(["Ships to:", *(f"  {line}" for line in ship), ""] if ship else []),
                f"Your order: {link}",
                "",
            ]
        )
        e = html.escape
        table = "".join(f"<tr><td>{e(label)}</td><td>{e(value)}</td></tr>" for label, value in rows)
        ship_html = "<br>".join(e(line) for line in ship)
        body = (
            f"<p>Thank you for your order #{order.id}.</p><table>{table}</table>"
            + (f"<p>Ships to:<br>{ship_html}</p>" if ship else "")
            + f'<p><a href="{e(link)}">Your order</a></p>'
        )
        return Email(to, f"Your order #{order.id} is confirmed", text, html=body)

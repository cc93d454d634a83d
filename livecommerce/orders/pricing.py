"""What a buyer pays for an order: goods, shipping and tax, in integer minor units.

The one computation of an order's total, used when the order is placed (``checkout``) and when
a quote is shown before buying; the order keeps its result (``amount_minor`` is what is
charged). The rule, per seller (``ShopTerms``):

- Shipping is the shop's flat rate per order, unless the shop ships free over a threshold and
  the buyer's goods in the same show from this shop reach it: the goods of this order plus
  those of the buyer's other orders of that show that are paid (or later) or still reserved.
  From the order that reaches the threshold on, orders ship free; shipping already paid on
  earlier orders stays as charged. An order outside a show counts only its own goods.
- Tax "included": prices already include tax at ``tax_rate_bp`` (basis points); the included
  share is ``goods * rate / (10000 + rate)``, shown, not added. Tax "added": ``goods * rate /
  10000`` is added on top. Tax is on goods only; shipping is not taxed. Amounts round half up
  to the minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.orders.orders import HOLDING, SOLD
from livecommerce.orders.shops import ShopTerms, TaxMode
from livecommerce.platform.db.tables import orders


def _round_half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True)
class Price:
    """An order's figures, in minor units of ``currency``. ``total`` is what is charged."""

    goods: int
    shipping: int
    tax: int
    tax_included: bool
    currency: str

    @property
    def total(self) -> int:
        return self.goods + self.shipping + (0 if self.tax_included else self.tax)

    def to_dict(self) -> dict[str, Any]:
        def money(amount: int) -> dict[str, Any]:
            return {"amount": amount, "currency": self.currency}

        return {
            "goods": money(self.goods),
            "shipping": money(self.shipping),
            "tax": money(self.tax),
            "tax_included": self.tax_included,
            "total": money(self.total),
        }


def price(
    *, unit_price: int, qty: int, currency: str, terms: ShopTerms, goods_before: int = 0
) -> Price:
    """The price of ``qty`` units at ``unit_price``; ``goods_before``: the buyer's goods in the
    same show from this shop already paid or reserved (0 outside a show)."""
    if unit_price < 0 or qty < 1 or goods_before < 0:
        raise ValueError("a price needs a unit price >= 0, qty >= 1 and goods before >= 0")
    goods = unit_price * qty
    free = (
        terms.free_shipping_over_minor is not None
        and goods_before + goods >= terms.free_shipping_over_minor
    )
    shipping = 0 if free else terms.shipping_flat_minor
    rate = terms.tax_rate_bp
    if terms.tax_mode is TaxMode.INCLUDED:
        tax = _round_half_up(goods * rate, 10_000 + rate)
    else:
        tax = _round_half_up(goods * rate, 10_000)
    return Price(
        goods=goods,
        shipping=shipping,
        tax=tax,
        tax_included=terms.tax_mode is TaxMode.INCLUDED,
        currency=currency,
    )


async def goods_before(
    conn: AsyncConnection, *, buyer_id: int, seller_id: int, stream_id: int, currency: str
) -> int:
    """The buyer's goods (before shipping and added tax) in one show from one shop, over the
    orders that count towards free shipping: reserved, paid and after, not refunded away."""
    counted = [s.value for s in HOLDING | SOLD]
    total = (
        await conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(orders.c.unit_price_minor * orders.c.qty), 0)
            ).where(
                orders.c.buyer_id == buyer_id,
                orders.c.seller_id == seller_id,
                orders.c.stream_id == stream_id,
                orders.c.currency == currency,
                orders.c.status.in_(counted),
            )
        )
    ).scalar_one()
    return int(total)

"""A product's card: what another domain may show of one SKU (title, variant, picture, price),
with the product's other variants a buyer may choose instead.

The live rooms pin it over the video; they get this reader at composition and never see the
catalog's own records.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.catalog.products import get_product


@dataclass(frozen=True)
class CardVariant:
    """One SKU of the product as a buyer chooses it: "M", "M / Black" (``label``)."""

    sku_id: int
    label: str
    attributes: dict[str, str]
    price: int  # minor units of ``currency``
    currency: str


@dataclass(frozen=True)
class ProductCard:
    product_id: int
    sku_id: int
    title: str
    image_url: str | None
    price: int  # minor units of ``currency``
    currency: str
    variant: str  # the label of ``sku_id`` (empty: the SKU has no attributes)
    variants: tuple[CardVariant, ...]  # every SKU of the product, ``sku_id`` among them


async def product_card(
    engine: AsyncEngine, product_id: int, sku_id: int | None
) -> ProductCard | None:
    """The card of ``sku_id`` (the product's first SKU if None); None if that SKU is not of
    the product. Raises ``NotFound`` for no such product."""
    async with engine.connect() as conn:
        product = await get_product(conn, product_id)
    variant = next((v for v in product.variants if sku_id in (None, v.id)), None)
    if variant is None:
        return None
    return ProductCard(
        product_id=product.id,
        sku_id=variant.id,
        title=product.title,
        image_url=product.image_url,
        price=variant.price.amount,
        currency=variant.price.currency,
        variant=variant.label,
        variants=tuple(
            CardVariant(
                sku_id=v.id,
                label=v.label,
                attributes=dict(v.attributes),
                price=v.price.amount,
                currency=v.price.currency,
            )
            for v in product.variants
        ),
    )

"""Products and their SKUs: the catalog's system of record in SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError, NotFound
from livecommerce.inventory import onhand
from livecommerce.platform.db.tables import product_photos, products, skus, utcnow


@dataclass(frozen=True)
class Money:
    """An amount in integer minor units (cents) of an ISO 4217 currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError("money cannot be negative")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError("currency must be a 3-letter ISO code in upper case")

    def to_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency}


def variant_label(attributes: dict[str, str]) -> str:
    """What names a variant to a buyer: its attribute values in order ("M", "M / Black"),
    empty for a SKU without attributes."""
    return " / ".join(v.strip() for v in attributes.values() if v.strip())


def item_name(title: str, attributes: dict[str, str]) -> str:
    """A product and its variant as one line: "Everyday Hoodie (M)", or the title alone."""
    label = variant_label(attributes)
    return f"{title} ({label})" if label else title


@dataclass(frozen=True)
class Variant:
    id: int
    code: str
    attributes: dict[str, str]
    price: Money
    stock_on_hand: int

    @property
    def label(self) -> str:
        return variant_label(self.attributes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sku": self.code,
            "label": self.label,
            "attributes": self.attributes,
            "price": self.price.to_dict(),
            "stock_on_hand": self.stock_on_hand,
        }


@dataclass(frozen=True)
class Photo:
    """An uploaded photo; its thumbnails are served at ``/api/photos/{id}/{side}``."""

    id: int
    width: int
    height: int

    @property
    def url(self) -> str:
        return photo_url(self.id, 800)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "thumbnail_url": photo_url(self.id, 200),
            "width": self.width,
            "height": self.height,
        }


def photo_url(photo_id: int, side: int) -> str:
    return f"/api/photos/{photo_id}/{side}"


@dataclass(frozen=True)
class Product:
    id: int
    owner_id: int
    title: str
    description: str
    image_url: str | None
    active: bool
    created_at: datetime
    variants: tuple[Variant, ...] = field(default=())
    ships: bool = False  # a physical good: orders need a shipping address before payment
    photos: tuple[Photo, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner_id": self.owner_id,
            "title": self.title,
            "description": self.description,
            "image_url": self.image_url,
            "active": self.active,
            "ships": self.ships,
            "created_at": self.created_at.isoformat(),
            "variants": [v.to_dict() for v in self.variants],
            "photos": [p.to_dict() for p in self.photos],
        }


@dataclass(frozen=True)
class VariantDraft:
    """A SKU to create or, on update, to change (matched by ``code``)."""

    code: str
    price_minor: int | None = None
    currency: str | None = None
    stock_on_hand: int | None = None
    attributes: dict[str, str] | None = None


_SKU_TAKEN = "a SKU with that code exists"


async def _load_variants(conn: AsyncConnection, product_ids: list[int]) -> dict[int, list[Variant]]:
    found: dict[int, list[Variant]] = {pid: [] for pid in product_ids}
    if not product_ids:
        return found
    rows = await conn.execute(
        sa.select(skus).where(skus.c.product_id.in_(product_ids)).order_by(skus.c.id)
    )
    for row in rows:
        m = row._mapping
        found[m["product_id"]].append(
            Variant(
                id=m["id"],
                code=m["code"],
                attributes=dict(m["attributes"]),
                price=Money(m["price_minor"], m["currency"]),
                stock_on_hand=m["stock_on_hand"],
            )
        )
    return found


async def _load_photos(conn: AsyncConnection, product_ids: list[int]) -> dict[int, list[Photo]]:
    found: dict[int, list[Photo]] = {pid: [] for pid in product_ids}
    if not product_ids:
        return found
    rows = await conn.execute(
        sa.select(product_photos)
        .where(product_photos.c.product_id.in_(product_ids))
        .order_by(product_photos.c.position, product_photos.c.id)
    )
    for m in (row._mapping for row in rows):
        found[m["product_id"]].append(Photo(id=m["id"], width=m["width"], height=m["height"]))
    return found


def _product(row: sa.Row[Any], variants: list[Variant], photos: list[Photo]) -> Product:
    m = row._mapping
    return Product(
        id=m["id"],
        owner_id=m["owner_id"],
        title=m["title"],
        description=m["description"],
        image_url=m["image_url"],
        active=m["active"],
        created_at=m["created_at"],
        variants=tuple(variants),
        ships=m["ships"],
        photos=tuple(photos),
    )


async def get_product(conn: AsyncConnection, product_id: int) -> Product:
    row = (await conn.execute(sa.select(products).where(products.c.id == product_id))).one_or_none()
    if row is None:
        raise NotFound("product")
    variants = (await _load_variants(conn, [product_id]))[product_id]
    return _product(row, variants, (await _load_photos(conn, [product_id]))[product_id])


async def list_products(
    conn: AsyncConnection,
    *,
    owner_id: int | None = None,
    ids: list[int] | None = None,
    include_inactive: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[Product]:
    query = sa.select(products).order_by(products.c.id).limit(limit).offset(offset)
    if owner_id is not None:
        query = query.where(products.c.owner_id == owner_id)
    if ids is not None:
        query = query.where(products.c.id.in_(ids))
    if not include_inactive:
        query = query.where(products.c.active.is_(True))
    rows = (await conn.execute(query)).all()
    ids_found = [r._mapping["id"] for r in rows]
    variants = await _load_variants(conn, ids_found)
    photos = await _load_photos(conn, ids_found)
    return [_product(r, variants[i], photos[i]) for r, i in zip(rows, ids_found, strict=True)]


async def create_product(
    engine: AsyncEngine,
    owner_id: int,
    *,
    title: str,
    description: str,
    image_url: str | None,
    variants: list[VariantDraft],
    ships: bool = False,
) -> Product:
    """Create a product with at least one SKU; SKU codes are unique across the catalog."""
    if not variants:
        raise LiveCommerceError(ErrorCode.INVALID_INPUT, "a product needs at least one variant")
    try:
        async with engine.begin() as conn:
            product_id = (
                await conn.execute(
                    products.insert()
                    .values(
                        owner_id=owner_id,
                        title=title,
                        description=description,
                        image_url=image_url,
                        active=True,
                        ships=ships,
                        created_at=utcnow(),
                    )
                    .returning(products.c.id)
                )
            ).scalar_one()
            for draft in variants:
                await _insert_variant(conn, product_id, draft)
            return await get_product(conn, product_id)
    except IntegrityError:
        raise LiveCommerceError(ErrorCode.SKU_TAKEN, _SKU_TAKEN) from None


async def _insert_variant(conn: AsyncConnection, product_id: int, draft: VariantDraft) -> None:
    if draft.price_minor is None or draft.currency is None:
        raise LiveCommerceError(
            ErrorCode.INVALID_INPUT, f"new variant {draft.code} needs price_minor and currency"
        )
    sku_id = (
        await conn.execute(
            skus.insert()
            .values(
                product_id=product_id,
                code=draft.code,
                attributes=draft.attributes or {},
                price_minor=draft.price_minor,
                currency=draft.currency,
            )
            .returning(skus.c.id)
        )
    ).scalar_one()
    if draft.stock_on_hand:  # a new SKU holds none until inventory counts it in
        await onhand.set_on_hand(conn, sku_id, draft.stock_on_hand)


async def update_product(
    engine: AsyncEngine,
    product_id: int,
    editor_id: int,
    changes: dict[str, Any],
    variants: list[VariantDraft] | None = None,
) -> tuple[Product, list[tuple[Variant, int]]]:
    """Apply ``changes`` (title, description, image_url, active, ships) and upsert ``variants``.

    Only the owner may edit. Returns the product and each existing variant that changed with
    its change in stock on hand, so the caller can bring the live counters in line.
    """
    try:
        async with engine.begin() as conn:
            before = await get_product(conn, product_id)
            if before.owner_id != editor_id:
                raise Forbidden("only the product's owner may edit it")
            if changes:
                await conn.execute(
                    products.update().where(products.c.id == product_id).values(**changes)
                )
            existing = {v.code: v for v in before.variants}
            for draft in variants or []:
                current = existing.get(draft.code)
                if current is None:
                    await _insert_variant(conn, product_id, draft)
                    continue
                values: dict[str, Any] = {}
                if draft.price_minor is not None:
                    values["price_minor"] = draft.price_minor
                if draft.currency is not None:
                    values["currency"] = draft.currency
                if draft.attributes is not None:
                    values["attributes"] = draft.attributes
                if values:
                    await conn.execute(
                        skus.update().where(skus.c.id == current.id).values(**values)
                    )
                if draft.stock_on_hand is not None:
                    await onhand.set_on_hand(conn, current.id, draft.stock_on_hand)
            after = await get_product(conn, product_id)
    except IntegrityError:
        raise LiveCommerceError(ErrorCode.SKU_TAKEN, _SKU_TAKEN) from None
    old = {v.code: v for v in before.variants}
    changed = [
        (v, v.stock_on_hand - old[v.code].stock_on_hand)
        for v in after.variants
        if v.code in old and old[v.code] != v
    ]
    return after, changed

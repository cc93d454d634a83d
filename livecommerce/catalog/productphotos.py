"""A product's photos: thumbnails in object storage, a row each in SQL, the first one the cover.

The cover's URL is written to the product's ``image_url``, so everything that shows a product
(its card over the video, the bag, the lineup) shows its photo without knowing photos exist.
"""

from __future__ import annotations

import asyncio
import secrets

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.catalog.photos import CONTENT_TYPE, THUMBNAIL_SIDES, make_thumbnails
from livecommerce.catalog.products import Product, get_product, photo_url
from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError, NotFound
from livecommerce.platform.db.tables import product_photos, products, utcnow
from livecommerce.platform.objectstore import ObjectStore

MAX_PHOTOS = 12
THUMBNAILERS = 2  # photos decoded at once per process: each may take ~160 MB while it runs


def object_key(storage_key: str, side: int) -> str:
    return f"{storage_key}/{side}.webp"


async def _owned(conn: AsyncConnection, product_id: int, editor_id: int) -> None:
    owner = (
        await conn.execute(sa.select(products.c.owner_id).where(products.c.id == product_id))
    ).scalar_one_or_none()
    if owner is None:
        raise NotFound("product")
    if owner != editor_id:
        raise Forbidden("only the product's owner may change its photos")


async def _set_cover(conn: AsyncConnection, product_id: int) -> None:
    first = (
        await conn.execute(
            sa.select(product_photos.c.id)
            .where(product_photos.c.product_id == product_id)
            .order_by(product_photos.c.position, product_photos.c.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    # With no photo left, the product shows no picture rather than a link to a deleted one.
    cover = photo_url(first, 800) if first is not None else None
    await conn.execute(products.update().where(products.c.id == product_id).values(image_url=cover))


async def add_photo(
    engine: AsyncEngine,
    store: ObjectStore,
    product_id: int,
    editor_id: int,
    data: bytes,
    slots: asyncio.Semaphore,
) -> Product:
    """Check, thumbnail and store ``data`` as the product's next photo. Owner only.

    Refusals: ``invalid_input`` (not an image, damaged, too many pixels), ``payload_too_large``,
    ``conflict`` (already `MAX_PHOTOS`).
    """
    async with engine.connect() as conn:
        await _owned(conn, product_id, editor_id)
    async with slots:  # a burst of uploads waits its turn instead of exhausting memory
        thumbnails = await asyncio.to_thread(make_thumbnails, data)  # CPU work, off the loop
    storage_key = f"photos/{product_id}/{secrets.token_hex(8)}"
    stored: list[str] = []
    try:
        for side in THUMBNAIL_SIDES:
            key = object_key(storage_key, side)
            await store.put(key, thumbnails.webp[side], CONTENT_TYPE)
            stored.append(key)
        async with engine.begin() as conn:
            await _owned(conn, product_id, editor_id)
            count, last = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.max(product_photos.c.position)).where(
                        product_photos.c.product_id == product_id
                    )
                )
            ).one()
            if count >= MAX_PHOTOS:
                raise LiveCommerceError(
                    ErrorCode.CONFLICT, f"a product has at most {MAX_PHOTOS} photos"
                )
            await conn.execute(
                product_photos.insert().values(
                    product_id=product_id,
                    storage_key=storage_key,
                    position=(last or 0) + 1,
                    width=thumbnails.width,
                    height=thumbnails.height,
                    created_at=utcnow(),
                )
            )
            await _set_cover(conn, product_id)
            return await get_product(conn, product_id)
    except BaseException:
        for key in stored:  # nothing names these objects: do not leave them behind
            await asyncio.shield(store.delete(key))
        raise


async def remove_photo(
    engine: AsyncEngine, store: ObjectStore, product_id: int, photo_id: int, editor_id: int
) -> Product:
    """Delete one photo (owner only); the next one becomes the cover."""
    async with engine.begin() as conn:
        await _owned(conn, product_id, editor_id)
        storage_key = (
            await conn.execute(
                sa.select(product_photos.c.storage_key).where(
                    product_photos.c.id == photo_id, product_photos.c.product_id == product_id
                )
            )
        ).scalar_one_or_none()
        if storage_key is None:
            raise NotFound("photo")
        await conn.execute(product_photos.delete().where(product_photos.c.id == photo_id))
        await _set_cover(conn, product_id)
        product = await get_product(conn, product_id)
    for side in THUMBNAIL_SIDES:
        await store.delete(object_key(storage_key, side))
    return product


async def reorder_photos(
    engine: AsyncEngine, product_id: int, editor_id: int, photo_ids: list[int]
) -> Product:
    """Put the product's photos in this order (all of them, once each); the first is the cover."""
    async with engine.begin() as conn:
        await _owned(conn, product_id, editor_id)
        current = set(
            (
                await conn.execute(
                    sa.select(product_photos.c.id).where(product_photos.c.product_id == product_id)
                )
            ).scalars()
        )
        if len(photo_ids) != len(set(photo_ids)) or set(photo_ids) != current:
            raise LiveCommerceError(
                ErrorCode.INVALID_INPUT, "list each of the product's photos exactly once"
            )
        for position, photo_id in enumerate(photo_ids, start=1):
            await conn.execute(
                product_photos.update()
                .where(product_photos.c.id == photo_id)
                .values(position=position)
            )
        await _set_cover(conn, product_id)
        return await get_product(conn, product_id)


async def photo_object(conn: AsyncConnection, photo_id: int, side: int) -> str:
    """The object key of one thumbnail; 404 for an unknown photo or size."""
    if side not in THUMBNAIL_SIDES:
        raise NotFound("photo size")
    storage_key = (
        await conn.execute(
            sa.select(product_photos.c.storage_key).where(product_photos.c.id == photo_id)
        )
    ).scalar_one_or_none()
    if storage_key is None:
        raise NotFound("photo")
    return object_key(storage_key, side)


THUMBNAIL_SLOTS = web.AppKey("thumbnail_slots", asyncio.Semaphore)

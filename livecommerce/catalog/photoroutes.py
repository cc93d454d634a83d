"""HTTP routes for product photos: upload (multipart), reorder, delete, and the thumbnails."""

from __future__ import annotations

import asyncio

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import Field

from livecommerce.accounts.routes import current_user
from livecommerce.catalog.photos import CONTENT_TYPE, MAX_PHOTO_BYTES
from livecommerce.catalog.productphotos import (
    MAX_PHOTOS,
    THUMBNAIL_SLOTS,
    add_photo,
    photo_object,
    remove_photo,
    reorder_photos,
)
from livecommerce.errors import ErrorCode, InvalidInput, LiveCommerceError, NotFound
from livecommerce.events.bus import EVENTS
from livecommerce.events.catalog import ProductChanged
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.objectstore import OBJECTS
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, path_id, read_json
from livecommerce.platform.resources import SETTINGS

MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {"photo": {"type": "string", "format": "binary"}},
    "required": ["photo"],
}


class PhotoOrder(Payload):
    photos: list[int] = Field(min_length=1, max_length=MAX_PHOTOS)


async def _read_photo(request: web.Request) -> bytes:
    """The ``photo`` part of a multipart/form-data body, refused past `MAX_PHOTO_BYTES`."""
    if request.content_type != "multipart/form-data":
        raise LiveCommerceError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the photo as multipart/form-data"
        )
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_read_timeout_s):
            reader = await request.multipart()
            for _ in range(5):  # a few other fields are skipped, not an endless stream of them
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader) or part.name != "photo":
                    continue
                data = bytearray()
                while chunk := await part.read_chunk(64 * 1024):
                    data += chunk
                    if len(data) > MAX_PHOTO_BYTES:
                        raise LiveCommerceError(
                            ErrorCode.PAYLOAD_TOO_LARGE,
                            f"a photo is at most {MAX_PHOTO_BYTES} bytes",
                        )
                return bytes(data)
    except TimeoutError:
        raise LiveCommerceError(
            ErrorCode.REQUEST_TIMEOUT, "the request body did not arrive in time"
        ) from None
    except (ValueError, AssertionError, HttpProcessingError):  # aiohttp refusing a bad body
        raise InvalidInput("the multipart body is malformed") from None
    raise InvalidInput("the body has no 'photo' file field")


async def _changed(request: web.Request, product_id: int, sku_ids: tuple[int, ...]) -> None:
    # Cards are cached with the product's facts on every process.
    await request.app[EVENTS].publish(ProductChanged(product_id=product_id, sku_ids=sku_ids))


async def post_photo(request: web.Request) -> web.Response:
    product_id = path_id(request, what="product")
    user = await current_user(request)
    data = await _read_photo(request)
    product = await add_photo(
        request.app[ENGINE],
        request.app[OBJECTS],
        product_id,
        user.id,
        data,
        request.app[THUMBNAIL_SLOTS],
    )
    await _changed(request, product.id, tuple(v.id for v in product.variants))
    return web.json_response({"product": product.to_dict()}, status=201)


async def delete_photo(request: web.Request) -> web.Response:
    product_id = path_id(request, what="product")
    photo_id = path_id(request, "photo_id", what="photo")
    user = await current_user(request)
    product = await remove_photo(
        request.app[ENGINE], request.app[OBJECTS], product_id, photo_id, user.id
    )
    await _changed(request, product.id, tuple(v.id for v in product.variants))
    return web.json_response({"product": product.to_dict()})


async def put_photo_order(request: web.Request) -> web.Response:
    product_id = path_id(request, what="product")
    user = await current_user(request)
    body = await read_json(request, PhotoOrder)
    if any(not 0 < p <= MAX_ID for p in body.photos):
        raise InvalidInput("photo ids are positive integers")
    product = await reorder_photos(request.app[ENGINE], product_id, user.id, body.photos)
    await _changed(request, product.id, tuple(v.id for v in product.variants))
    return web.json_response({"product": product.to_dict()})


async def get_photo(request: web.Request) -> web.StreamResponse:
    """A thumbnail: the bytes (local storage) or a redirect to the bucket (S3)."""
    photo_id = path_id(request, what="photo")
    side = path_id(request, "side", what="photo size")
    async with request.app[ENGINE].connect() as conn:
        key = await photo_object(conn, photo_id, side)
    store = request.app[OBJECTS]
    url = await store.public_url(key)
    if url is not None:
        raise web.HTTPFound(url, headers={"Cache-Control": "private, max-age=600"})
    data = await store.read(key)
    if data is None:
        raise NotFound("photo")
    return web.Response(
        body=data,
        content_type=CONTENT_TYPE,
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


_ID = r"{id:\d+}"
OPERATIONS = (
    Operation(
        "POST",
        f"/api/products/{_ID}/photos",
        post_photo,
        "Upload a photo (multipart field `photo`: JPEG, PNG or WebP, at most 10 MiB and 40 "
        "megapixels); it is thumbnailed to 200 and 800 px WebP without metadata (owner only)",
        "catalog",
        raw_body="multipart/form-data",
        raw_body_schema=MULTIPART_SCHEMA,
        auth=True,
        status=201,
        errors=(409, 413, 415, 422),
    ),
    Operation(
        "PUT",
        f"/api/products/{_ID}/photos",
        put_photo_order,
        "Reorder a product's photos; the first is the cover and its `image_url` (owner only)",
        "catalog",
        body=PhotoOrder,
        auth=True,
    ),
    Operation(
        "DELETE",
        rf"/api/products/{_ID}/photos/{{photo_id:\d+}}",
        delete_photo,
        "Delete a photo (owner only)",
        "catalog",
        auth=True,
    ),
    Operation(
        "GET",
        rf"/api/photos/{_ID}/{{side:\d+}}",
        get_photo,
        "A photo's thumbnail, 200 or 800 px on its longest side (WebP, or a redirect to the "
        "object storage bucket)",
        "catalog",
        response_type=CONTENT_TYPE,
    ),
)

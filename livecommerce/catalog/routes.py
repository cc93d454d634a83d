"""HTTP routes for the catalog."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import AnyHttpUrl, Field, StringConstraints

from livecommerce.accounts.routes import current_user, optional_user
from livecommerce.catalog.products import (
    VariantDraft,
    create_product,
    get_product,
    list_products,
    update_product,
)
from livecommerce.errors import NotFound
from livecommerce.events.bus import EVENTS
from livecommerce.events.catalog import ProductChanged
from livecommerce.events.stock import OnHandChanged
from livecommerce.inventory.adjustments import record_count
from livecommerce.inventory.onhand import follow_on_hand
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import Payload, path_id, query, read_json

SkuCode = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Attributes = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=40)],
    Annotated[str, StringConstraints(max_length=100)],
]
PRICE_MAX = 10**11  # a billion in major units: anything above is a typo
STOCK_MAX = 10**7


class NewVariant(Payload):
    sku: SkuCode
    price_minor: int = Field(ge=0, le=PRICE_MAX, description="price in minor units (cents)")
    currency: Currency
    stock_on_hand: int = Field(default=0, ge=0, le=STOCK_MAX)
    attributes: Attributes = Field(default_factory=dict, max_length=10)


class VariantChange(Payload):
    sku: SkuCode
    price_minor: int | None = Field(default=None, ge=0, le=PRICE_MAX)
    currency: Currency | None = None
    stock_on_hand: int | None = Field(default=None, ge=0, le=STOCK_MAX)
    attributes: Attributes | None = Field(default=None, max_length=10)


class NewProduct(Payload):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    image_url: AnyHttpUrl | None = None
    ships: bool = Field(default=False, description="a physical good: orders need an address")
    variants: list[NewVariant] = Field(min_length=1, max_length=100)


class ProductChange(Payload):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    image_url: AnyHttpUrl | None = None
    active: bool | None = None
    ships: bool | None = None
    variants: list[VariantChange] | None = Field(default=None, max_length=100)


class ProductQuery(Payload):
    owner: int | None = Field(default=None, ge=1, le=2**31 - 1)
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=10**6)


def _draft(v: NewVariant | VariantChange) -> VariantDraft:
    return VariantDraft(
        code=v.sku,
        price_minor=v.price_minor,
        currency=v.currency,
        stock_on_hand=v.stock_on_hand,
        attributes=v.attributes,
    )


async def get_products(request: web.Request) -> web.Response:
    q = query(request, ProductQuery)
    async with request.app[ENGINE].connect() as conn:
        found = await list_products(conn, owner_id=q.owner, limit=q.limit, offset=q.offset)
    return web.json_response({"products": [p.to_dict() for p in found]})


async def post_product(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, NewProduct)
    product = await create_product(
        request.app[ENGINE],
        user.id,
        title=body.title,
        description=body.description,
        image_url=str(body.image_url) if body.image_url else None,
        variants=[_draft(v) for v in body.variants],
        ships=body.ships,
    )
    return web.json_response({"product": product.to_dict()}, status=201)


async def get_one_product(request: web.Request) -> web.Response:
    product_id = path_id(request, what="product")
    viewer = await optional_user(request)
    async with request.app[ENGINE].connect() as conn:
        product = await get_product(conn, product_id)
    if not product.active and (viewer is None or viewer.id != product.owner_id):
        raise NotFound("product")
    return web.json_response({"product": product.to_dict()})


async def patch_product(request: web.Request) -> web.Response:
    product_id = path_id(request, what="product")
    user = await current_user(request)
    body = await read_json(request, ProductChange)
    changes = body.model_dump(exclude_unset=True, exclude={"variants"})
    if "image_url" in changes:
        changes["image_url"] = str(body.image_url) if body.image_url else None
    for key in ("title", "description", "active", "ships"):
        if key in changes and changes[key] is None:
            del changes[key]
    variants = [_draft(v) for v in body.variants] if body.variants else None
    product, changed = await update_product(
        request.app[ENGINE], product_id, user.id, changes, variants
    )
    # SKU facts (active, currency) are cached on every process; each forgets this product's.
    await request.app[EVENTS].publish(
        ProductChanged(product_id=product.id, sku_ids=tuple(v.id for v in product.variants))
    )
    for variant, delta in changed:
        await follow_on_hand(
            request.app[ENGINE], request.app[RESERVATIONS], variant.id, delta, variant.price.amount
        )
        # Kept in the SKU's audit log beside the adjustments (a refused one raised above).
        await record_count(request.app[ENGINE], variant.id, user.id, delta, variant.stock_on_hand)
        await request.app[EVENTS].publish(OnHandChanged(sku_id=variant.id))  # rooms redraw it
    return web.json_response({"product": product.to_dict()})


OPERATIONS = (
    Operation(
        "GET", "/api/products", get_products, "List active products", "catalog", query=ProductQuery
    ),
    Operation(
        "POST",
        "/api/products",
        post_product,
        "Create a product with its variants",
        "catalog",
        body=NewProduct,
        auth=True,
        status=201,
        errors=(409,),
    ),
    Operation("GET", r"/api/products/{id:\d+}", get_one_product, "One product", "catalog"),
    Operation(
        "PATCH",
        r"/api/products/{id:\d+}",
        patch_product,
        "Edit a product, change prices and stock, add variants (owner only)",
        "catalog",
        body=ProductChange,
        auth=True,
        errors=(409,),
    ),
)

"""HTTP routes for a seller's shop settings: ``GET|PUT /api/shop/settings`` (the signed-in
user's own shop; every signed-in user may sell, so every one has settings, by default the
defaults)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, model_validator

from livecommerce.accounts.routes import current_user
from livecommerce.orders.shops import MAX_MINOR, SHOP_TERMS, ShopTerms, TaxMode
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import Payload, read_json


class ShopSettings(Payload):
    """The whole settings object: a PUT replaces every field (absent ones take defaults)."""

    shipping_flat_minor: int = Field(
        default=0, ge=0, le=MAX_MINOR, description="shipping per order, minor units"
    )
    free_shipping_over_minor: int | None = Field(
        default=None,
        ge=1,
        le=MAX_MINOR,
        description="a buyer's goods in one show at or above this ship free; null: never",
    )
    tax_mode: TaxMode = Field(
        default=TaxMode.INCLUDED, description="included: prices include tax; added: on top"
    )
    tax_rate_bp: int = Field(default=0, ge=0, le=10_000, description="basis points: 2000 = 20%")
    ship_by_days: int = Field(default=3, ge=0, le=365)
    return_window_days: int = Field(default=30, ge=0, le=365)
    free_returns: bool = True

    @model_validator(mode="after")
    def _threshold_needs_a_rate(self) -> ShopSettings:
        if self.free_shipping_over_minor is not None and self.shipping_flat_minor == 0:
            raise ValueError("free_shipping_over_minor needs a shipping_flat_minor above 0")
        return self


async def get_settings(request: web.Request) -> web.Response:
    user = await current_user(request)
    terms = await request.app[SHOP_TERMS].get(user.id, fresh=True)
    return web.json_response({"settings": terms.to_dict()})


async def put_settings(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, ShopSettings)
    terms = await request.app[SHOP_TERMS].save(user.id, ShopTerms(**body.model_dump()))
    return web.json_response({"settings": terms.to_dict()})


OPERATIONS = (
    Operation(
        "GET",
        "/api/shop/settings",
        get_settings,
        "Your shop's shipping, tax and returns settings",
        "shop",
        auth=True,
    ),
    Operation(
        "PUT",
        "/api/shop/settings",
        put_settings,
        "Replace your shop's shipping, tax and returns settings",
        "shop",
        body=ShopSettings,
        auth=True,
    ),
)

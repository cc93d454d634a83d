"""HTTP routes for a buyer's saved shipping addresses (``/api/addresses``), owner-only."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints, field_validator

from livecommerce.accounts.addresses import (
    FIELDS,
    create_address,
    delete_address,
    list_addresses,
    update_address,
)
from livecommerce.accounts.routes import current_user
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import Payload, path_id, read_json

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # one line of text: no control characters


Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_PRINTABLE)]
Line = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
OptionalLine = Annotated[str, StringConstraints(max_length=200, pattern=_PRINTABLE)]
City = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_PRINTABLE)]
Region = Annotated[str, StringConstraints(max_length=100, pattern=_PRINTABLE)]
PostalCode = Annotated[
    str, StringConstraints(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$")
]
Country = Annotated[str, StringConstraints(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")]
Phone = Annotated[str, StringConstraints(max_length=30, pattern=r"^[0-9+() .-]*$")]


class NewAddress(Payload):
    name: Name = Field(description="who receives the parcel")
    line1: Line
    line2: OptionalLine = ""
    city: City
    region: Region = Field(default="", description="state, province or county, if any")
    postal_code: PostalCode
    country: Country = Field(description="ISO 3166-1 alpha-2 code, e.g. US, FR")
    phone: Phone = ""
    make_default: bool = False

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class AddressChange(Payload):
    name: Name | None = None
    line1: Line | None = None
    line2: OptionalLine | None = None
    city: City | None = None
    region: Region | None = None
    postal_code: PostalCode | None = None
    country: Country | None = None
    phone: Phone | None = None
    make_default: bool = False

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value is not None else None


ADDRESS_ID = r"{id:\d+}"


async def get_addresses(request: web.Request) -> web.Response:
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        found = await list_addresses(conn, user.id)
    return web.json_response({"addresses": [a.to_dict() for a in found]})


async def post_address(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, NewAddress)
    fields = body.model_dump(include=set(FIELDS))
    address = await create_address(
        request.app[ENGINE], user.id, fields, make_default=body.make_default
    )
    return web.json_response({"address": address.to_dict()}, status=201)


async def patch_address(request: web.Request) -> web.Response:
    address_id = path_id(request, what="address")
    user = await current_user(request)
    body = await read_json(request, AddressChange)
    changes = {k: v for k, v in body.model_dump(include=set(FIELDS)).items() if v is not None}
    address = await update_address(
        request.app[ENGINE], user.id, address_id, changes, make_default=body.make_default
    )
    return web.json_response({"address": address.to_dict()})


async def post_default(request: web.Request) -> web.Response:
    address_id = path_id(request, what="address")
    user = await current_user(request)
    address = await update_address(request.app[ENGINE], user.id, address_id, {}, make_default=True)
    return web.json_response({"address": address.to_dict()})


async def delete_one(request: web.Request) -> web.Response:
    address_id = path_id(request, what="address")
    user = await current_user(request)
    await delete_address(request.app[ENGINE], user.id, address_id)
    return web.json_response({"deleted": address_id})


OPERATIONS = (
    Operation(
        "GET", "/api/addresses", get_addresses, "Your saved addresses", "addresses", auth=True
    ),
    Operation(
        "POST",
        "/api/addresses",
        post_address,
        "Save a shipping address (the first one is the default)",
        "addresses",
        body=NewAddress,
        auth=True,
        status=201,
        errors=(409,),
    ),
    Operation(
        "PATCH",
        f"/api/addresses/{ADDRESS_ID}",
        patch_address,
        "Edit one of your addresses",
        "addresses",
        body=AddressChange,
        auth=True,
        errors=(404,),
    ),
    Operation(
        "POST",
        f"/api/addresses/{ADDRESS_ID}/default",
        post_default,
        "Make one of your addresses the default",
        "addresses",
        auth=True,
        errors=(404,),
    ),
    Operation(
        "DELETE",
        f"/api/addresses/{ADDRESS_ID}",
        delete_one,
        "Delete one of your addresses",
        "addresses",
        auth=True,
        errors=(404,),
    ),
)

"""REST twins of the moderator actions in live rooms (same checks, same broadcasts)."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from livecommerce.accounts.routes import current_user, optional_user
from livecommerce.appkeys import ROOMS
from livecommerce.live.namespace import PinTerms, SaleTerms
from livecommerce.openapi import Operation
from livecommerce.payload import path_id, read_json


async def get_room(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await optional_user(request)
    return web.json_response({"room": await request.app[ROOMS].snapshot(stream_id, user)})


async def post_pin(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    body = await read_json(request, PinTerms)
    card = await request.app[ROOMS].pin(stream_id, user, body.product_id, body.sku_id)
    return web.json_response({"pinned": asdict(card)}, status=201)


async def delete_pin(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    await request.app[ROOMS].unpin(stream_id, user)
    return web.json_response({"ok": True})


async def post_sale(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    body = await read_json(request, SaleTerms)
    sale = await request.app[ROOMS].start_sale(stream_id, user, **body.model_dump())
    return web.json_response({"sale": asdict(sale)}, status=201)


async def delete_sale(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    sale_id = request.match_info["sale_id"]
    await request.app[ROOMS].stop_sale(stream_id, user, sale_id)
    return web.json_response({"ok": True})


_ID = r"{id:\d+}"
OPERATIONS = (
    Operation(
        "GET", f"/api/streams/{_ID}/room", get_room, "The room as a late joiner sees it", "live"
    ),
    Operation(
        "POST",
        f"/api/streams/{_ID}/pin",
        post_pin,
        "Pin a lineup product (moderators)",
        "live",
        body=PinTerms,
        auth=True,
        status=201,
    ),
    Operation(
        "DELETE", f"/api/streams/{_ID}/pin", delete_pin, "Unpin (moderators)", "live", auth=True
    ),
    Operation(
        "POST",
        f"/api/streams/{_ID}/sales",
        post_sale,
        "Start a flash sale (moderators)",
        "live",
        body=SaleTerms,
        auth=True,
        status=201,
    ),
    Operation(
        "DELETE",
        rf"/api/streams/{_ID}/sales/{{sale_id:[0-9a-f]+}}",
        delete_sale,
        "Stop a flash sale early (moderators)",
        "live",
        auth=True,
        errors=(409,),
    ),
)

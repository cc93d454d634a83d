"""REST twins of the moderator actions in live rooms (same checks, same broadcasts)."""

from __future__ import annotations

from aiohttp import web

from livecommerce.accounts.routes import current_user, optional_user
from livecommerce.live.rooms.messages import pinned_card, sale_view
from livecommerce.live.rooms.rooms import ROOMS
from livecommerce.live.transport.schemas import (
    BlockedWordsTerms,
    MuteTerms,
    PinTerms,
    SaleTerms,
    SlowModeTerms,
)
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import path_id, read_json


async def get_room(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await optional_user(request)
    return web.json_response({"room": await request.app[ROOMS].snapshot(stream_id, user)})


async def get_sales(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    return web.json_response({"sales": await request.app[ROOMS].sales_figures(stream_id, user)})


async def post_pin(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    body = await read_json(request, PinTerms)
    card = await request.app[ROOMS].pin(stream_id, user, body.product_id, body.sku_id)
    return web.json_response({"pinned": pinned_card(card)}, status=201)


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
    return web.json_response({"sale": sale_view(sale)}, status=201)


async def delete_sale(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    sale_id = request.match_info["sale_id"]
    await request.app[ROOMS].stop_sale(stream_id, user, sale_id)
    return web.json_response({"ok": True})


async def delete_chat(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    await request.app[ROOMS].chat.delete(stream_id, user, request.match_info["message_id"])
    return web.json_response({"ok": True})


async def post_mute(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    body = await read_json(request, MuteTerms)
    until = await request.app[ROOMS].chat.mute(stream_id, user, body.user_id, body.seconds)
    return web.json_response({"user_id": body.user_id, "until": until}, status=201)


async def get_mutes(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    return web.json_response({"mutes": await request.app[ROOMS].chat.mutes(stream_id, user)})


async def delete_mute(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    target_id = path_id(request, "user_id", what="user")
    user = await current_user(request)
    lifted = await request.app[ROOMS].chat.unmute(stream_id, user, target_id)
    return web.json_response({"user_id": target_id, "lifted": lifted})


async def put_slow_mode(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    body = await read_json(request, SlowModeTerms)
    await request.app[ROOMS].chat.slow_mode(stream_id, user, body.seconds)
    return web.json_response({"seconds": body.seconds})


async def put_blocked_words(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    body = await read_json(request, BlockedWordsTerms)
    words = await request.app[ROOMS].chat.block_words(stream_id, user, body.words)
    return web.json_response({"words": words})


_ID = r"{id:\d+}"
OPERATIONS = (
    Operation(
        "GET", f"/api/streams/{_ID}/room", get_room, "The room as a late joiner sees it", "live"
    ),
    Operation(
        "GET",
        f"/api/streams/{_ID}/sales",
        get_sales,
        "Sales figures of the stream so far, by order status (the team)",
        "live",
        auth=True,
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
    Operation(
        "DELETE",
        rf"/api/streams/{_ID}/chat/{{message_id:[0-9a-f]+}}",
        delete_chat,
        "Delete a chat message (moderators)",
        "live",
        auth=True,
    ),
    Operation(
        "POST",
        f"/api/streams/{_ID}/mutes",
        post_mute,
        "Mute a viewer in the chat for a time (moderators)",
        "live",
        body=MuteTerms,
        auth=True,
        status=201,
    ),
    Operation(
        "GET",
        f"/api/streams/{_ID}/mutes",
        get_mutes,
        "Who is muted in the chat now, with until when (moderators)",
        "live",
        auth=True,
    ),
    Operation(
        "DELETE",
        rf"/api/streams/{_ID}/mutes/{{user_id:\d+}}",
        delete_mute,
        "Unmute a viewer in the chat at once (moderators)",
        "live",
        auth=True,
    ),
    Operation(
        "PUT",
        f"/api/streams/{_ID}/chat/slowmode",
        put_slow_mode,
        "Set slow mode: seconds between two messages of one viewer, 0 for off (moderators)",
        "live",
        body=SlowModeTerms,
        auth=True,
    ),
    Operation(
        "PUT",
        f"/api/streams/{_ID}/chat/blocklist",
        put_blocked_words,
        "Replace the blocked-word list (moderators)",
        "live",
        body=BlockedWordsTerms,
        auth=True,
    ),
)

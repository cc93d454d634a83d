"""HTTP routes for following creators and "remind me" on scheduled shows."""

from __future__ import annotations

from aiohttp import web

from livecommerce.accounts.routes import current_user
from livecommerce.live.follows import follow, followed, remind, unfollow, unremind
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import path_id

_ID = r"{id:\d+}"


async def put_follow(request: web.Request) -> web.Response:
    creator_id = path_id(request, what="creator")
    user = await current_user(request)
    await follow(request.app[ENGINE], user.id, creator_id)
    return web.json_response({"creator_id": creator_id, "following": True})


async def delete_follow(request: web.Request) -> web.Response:
    creator_id = path_id(request, what="creator")
    user = await current_user(request)
    await unfollow(request.app[ENGINE], user.id, creator_id)
    return web.json_response({"creator_id": creator_id, "following": False})


async def put_reminder(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    await remind(request.app[ENGINE], user.id, stream_id)
    return web.json_response({"stream_id": stream_id, "reminded": True})


async def delete_reminder(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    await unremind(request.app[ENGINE], user.id, stream_id)
    return web.json_response({"stream_id": stream_id, "reminded": False})


async def get_following(request: web.Request) -> web.Response:
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        creators, shows = await followed(conn, user.id)
    return web.json_response({"creators": creators, "reminders": shows})


OPERATIONS = (
    Operation(
        "GET",
        "/api/following",
        get_following,
        "The creators you follow and the shows you asked to be reminded of",
        "follows",
        auth=True,
    ),
    Operation(
        "PUT",
        f"/api/creators/{_ID}/follow",
        put_follow,
        "Follow a creator: an email when each of their shows goes live",
        "follows",
        auth=True,
        errors=(409,),
    ),
    Operation(
        "DELETE",
        f"/api/creators/{_ID}/follow",
        delete_follow,
        "Stop following a creator",
        "follows",
        auth=True,
    ),
    Operation(
        "PUT",
        f"/api/streams/{_ID}/reminder",
        put_reminder,
        "Remind me: an email when this scheduled show goes live",
        "follows",
        auth=True,
        errors=(409,),
    ),
    Operation(
        "DELETE",
        f"/api/streams/{_ID}/reminder",
        delete_reminder,
        "Cancel the reminder of a show",
        "follows",
        auth=True,
    ),
)

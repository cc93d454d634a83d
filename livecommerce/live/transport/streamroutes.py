"""HTTP routes for shopstreams: create, read, edit, moderators and the stream key."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import AwareDatetime, Field

from livecommerce.accounts.roles import role_in_stream
from livecommerce.accounts.routes import current_user, optional_user
from livecommerce.events.bus import EVENTS
from livecommerce.events.streams import LineupChanged, StreamEnded, StreamKeyRotated
from livecommerce.live.follows import LIVE_NOW
from livecommerce.live.rooms.rooms import ROOMS
from livecommerce.live.streams import (
    Shopstream,
    StreamStatus,
    create_stream,
    get_stream,
    list_streams,
    remove_moderator,
    rotate_key,
    stream_key,
    update_stream,
)
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, path_id, query, read_json

ProductId = Annotated[int, Field(ge=1, le=MAX_ID)]


class NewStream(Payload):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    scheduled_at: AwareDatetime | None = None
    lineup: list[ProductId] = Field(default_factory=list, max_length=100)


class StreamChange(Payload):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    scheduled_at: AwareDatetime | None = None
    status: StreamStatus | None = None
    lineup: list[ProductId] | None = Field(default=None, max_length=100)


class StreamQuery(Payload):
    status: StreamStatus | None = None
    creator: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=10**6)


async def _view(request: web.Request, stream: Shopstream) -> dict[str, Any]:
    """The stream as the API shows it, with its phase (on air or not, from the live rooms)."""
    return stream.to_dict(on_air=await request.app[ROOMS].state.on_air(stream.id))


async def get_streams(request: web.Request) -> web.Response:
    q = query(request, StreamQuery)
    async with request.app[ENGINE].connect() as conn:
        found = await list_streams(
            conn,
            statuses=[q.status] if q.status else None,
            creator_id=q.creator,
            limit=q.limit,
            offset=q.offset,
        )
    on_air = await request.app[ROOMS].on_air_among([s.id for s in found])
    return web.json_response({"streams": [s.to_dict(on_air=s.id in on_air) for s in found]})


async def post_stream(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, NewStream)
    stream, key = await create_stream(
        request.app[ENGINE],
        user.id,
        title=body.title,
        description=body.description,
        scheduled_at=body.scheduled_at,
        lineup=body.lineup,
    )
    return web.json_response(
        {"stream": stream.to_dict(on_air=False), "stream_key": key, "role": "creator"},
        status=201,
    )


async def get_one_stream(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await optional_user(request)
    async with request.app[ENGINE].connect() as conn:
        role = await role_in_stream(conn, stream_id, user.id if user else None)
        stream = await get_stream(conn, stream_id)
    return web.json_response({"stream": await _view(request, stream), "role": role.value})


async def patch_stream(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    body = await read_json(request, StreamChange)
    changes = body.model_dump(exclude_unset=True, exclude={"lineup"})
    for key in ("title", "description"):
        if key in changes and changes[key] is None:
            del changes[key]
    if changes.get("status") is not None:
        changes["status"] = StreamStatus(changes["status"]).value
    elif "status" in changes:
        del changes["status"]
    stream = await update_stream(request.app[ENGINE], stream_id, user.id, changes, body.lineup)
    if body.lineup is not None:
        # Which products a purchase may name in this stream is cached on every process.
        await request.app[EVENTS].publish(LineupChanged(stream_id=stream.id))
    if changes.get("status") == StreamStatus.ENDED and stream.status is StreamStatus.ENDED:
        # Before the room hears it, so that a publisher on this process is off air by then;
        # sent again if the show had already ended (a retry after a lost notice is harmless).
        await request.app[EVENTS].publish(StreamEnded(stream_id=stream.id))
    if "status" in changes:
        await request.app[ROOMS].stream_status_changed(stream.id, stream.status)
    if changes.get("status") == StreamStatus.LIVE and stream.status is StreamStatus.LIVE:
        # Gone live by hand (no media yet): followers hear of it now, once (claimed per user).
        await request.app[LIVE_NOW].announce(stream.id)
    return web.json_response({"stream": await _view(request, stream)})


async def delete_moderator(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    moderator_id = path_id(request, "user_id", what="moderator")
    user = await current_user(request)
    stream = await remove_moderator(request.app[ENGINE], stream_id, user.id, moderator_id)
    return web.json_response({"stream": await _view(request, stream)})


async def get_key(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    key = await stream_key(request.app[ENGINE], stream_id, user.id)
    return web.json_response({"stream_key": key})


async def post_key(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    key = await rotate_key(request.app[ENGINE], stream_id, user.id)
    # The publisher using the old key is cut off, on whichever process holds its session.
    await request.app[EVENTS].publish(StreamKeyRotated(stream_id=stream_id))
    return web.json_response({"stream_key": key}, status=201)


_ID = r"{id:\d+}"
OPERATIONS = (
    Operation(
        "GET",
        "/api/streams",
        get_streams,
        "Shopstreams: live first, then upcoming",
        "streams",
        query=StreamQuery,
    ),
    Operation(
        "POST",
        "/api/streams",
        post_stream,
        "Schedule a shopstream (you become its creator)",
        "streams",
        body=NewStream,
        auth=True,
        status=201,
    ),
    Operation(
        "GET",
        f"/api/streams/{_ID}",
        get_one_stream,
        "One shopstream and your role in it",
        "streams",
    ),
    Operation(
        "PATCH",
        f"/api/streams/{_ID}",
        patch_stream,
        "Edit title, schedule, status or lineup (creator only)",
        "streams",
        body=StreamChange,
        auth=True,
        errors=(409,),
    ),
    Operation(
        "DELETE",
        rf"/api/streams/{_ID}/moderators/{{user_id:\d+}}",
        delete_moderator,
        "Remove a moderator (creator only)",
        "streams",
        auth=True,
    ),
    Operation(
        "GET",
        f"/api/streams/{_ID}/key",
        get_key,
        "The stream key (creator only)",
        "streams",
        auth=True,
    ),
    Operation(
        "POST",
        f"/api/streams/{_ID}/key",
        post_key,
        "Rotate the stream key (creator only)",
        "streams",
        auth=True,
        status=201,
    ),
)

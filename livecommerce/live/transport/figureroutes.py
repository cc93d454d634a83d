"""``GET /api/streams/{id}/figures``: the show's figures for its team, during the show and after."""

from __future__ import annotations

from aiohttp import web

from livecommerce.accounts.roles import Role, require_role
from livecommerce.accounts.routes import current_user
from livecommerce.live.rooms.figures import FIGURES
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import path_id


async def get_figures(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        await require_role(conn, stream_id, user.id, Role.CREATOR, Role.MODERATOR)
    return web.json_response({"figures": await request.app[FIGURES].figures(stream_id)})


OPERATIONS = (
    Operation(
        "GET",
        r"/api/streams/{id:\d+}/figures",
        get_figures,
        "The show's figures (creator and moderators): gross sales per currency, units, orders, "
        "buyers, peak and average viewers, conversion (buyers / peak viewers), per product, and "
        "a timeline of viewer samples, purchases, pins and flash sales (epoch ms)",
        "live",
        auth=True,
    ),
)

"""The Socket.IO server of the live rooms: routed when the app is built, made when Redis is up.

aiohttp freezes its router before start-up, but the server's ``AsyncRedisManager`` needs the
Redis URL, which is known only at start-up (Redis may be an embedded server the app starts).
So ``add_routes`` routes ``/socket.io/`` (GET, POST and OPTIONS, as ``AsyncServer.attach``
would) to whatever server sits under ``SOCKETIO``, and ``build_server`` makes that server once,
complete, with its manager on the real URL. Both use python-socketio's documented API only
(``client_manager=``, ``handle_request``); its internals stay in ``socketioseam``.
"""

from __future__ import annotations

from typing import cast

import socketio
from aiohttp import web

from livecommerce.live.transport import socketioseam

SOCKETIO = web.AppKey("socketio", socketio.AsyncServer)
PATH = "/socket.io/"
# Socket.IO frames up to this reach our handlers (those over MAX_EVENT_BYTES are answered
# payload_too_large); a larger frame closes the connection (websocket close 1009).
MAX_FRAME_BYTES = 1024 * 1024


def build_server(redis_url: str, channel: str) -> socketio.AsyncServer:
    """The server, joined to the other processes through Redis ``channel`` from the start.

    The manager connects on the first connection; namespaces are registered by the caller.
    """
    server = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(redis_url, channel=channel),
        serializer=socketioseam.LivePacket,
        max_http_buffer_size=MAX_FRAME_BYTES,
        ping_interval=20,
        ping_timeout=20,
    )
    socketioseam.install(server)
    return server


def add_routes(app: web.Application) -> None:
    """Route Socket.IO to ``app[SOCKETIO]``, which start-up provides (see ``build_server``)."""
    socketioseam.check()  # refuse unchecked library versions when the app is built
    for method in ("GET", "POST", "OPTIONS"):
        app.router.add_route(method, PATH, _handle)


async def _handle(request: web.Request) -> web.StreamResponse:
    return cast(web.StreamResponse, await request.app[SOCKETIO].handle_request(request))

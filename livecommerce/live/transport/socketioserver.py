"""The Socket.IO server of the live rooms: routed when the app is built, made when Redis is up.

aiohttp freezes its router before start-up, but the server's ``AsyncRedisManager`` needs the
Redis URL, which is known only at start-up (Redis may be an embedded server the app starts).
So ``add_routes`` routes ``/socket.io/`` (GET, POST and OPTIONS, as ``AsyncServer.attach``
would) to whatever server sits under ``SOCKETIO``, and ``build_server`` makes that server once,
complete, with its manager on the real URL. Both use python-socketio's documented API only
(``client_manager=``, ``handle_request``); its internals stay in ``socketioseam``.

Room broadcasts go through ``RoomEmitter``: the packet is encoded once and the same websocket
frame written to every local socket of the room (``socketioseam.LiveRedisManager``). A socket
that does not read keeps at most ``buffer_bytes`` unsent before it misses what ``DELIVERY``
says it may miss; one behind for ``stuck_s`` is cut (the client reconnects into a fresh
``room:state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import socketio
from aiohttp import web

from livecommerce.live.transport import socketioseam
from livecommerce.live.transport.engineioseam import Delivery, Fanout
from livecommerce.live.transport.socketioseam import LiveRedisManager

SOCKETIO = web.AppKey("socketio", socketio.AsyncServer)
PATH = "/socket.io/"
# Socket.IO frames up to this reach our handlers (those over MAX_EVENT_BYTES are answered
# payload_too_large); a larger frame closes the connection (websocket close 1009).
MAX_FRAME_BYTES = 1024 * 1024
NAMESPACE = "/live"

# What a socket behind (its unsent bytes over the bound) gets of each server event: ephemeral
# ones are skipped; of a room's state only the latest per group waits; anything else is sent.
_EPHEMERAL = frozenset({"reactions", "viewers", "chat:message", "purchase:feed"})
# Events a room's snapshot (``room:state``) does not draw from: a joiner's shared snapshot is
# not read again for them (its viewer count is the joiner's own, counted after the read).
_UNSEEN = frozenset({"reactions", "viewers", "purchase:feed"})
_STATE_GROUPS = {
    "product:pinned": "pin",
    "product:unpinned": "pin",
    "sale:started": "sale",
    "sale:ended": "sale",
    "stream:status": "status",
    "chat:slowmode": "slowmode",
}


def delivery(event: str, args: list[Any]) -> tuple[Delivery, str | None]:
    """How a socket that fell behind gets ``event``, and the state group it replaces."""
    if event in _EPHEMERAL:
        return Delivery.EPHEMERAL, None
    group = _STATE_GROUPS.get(event)
    if group is not None:
        return Delivery.STATE, group
    if event == "stock:changed" and args and isinstance(args[0], dict):
        return Delivery.STATE, f"stock:{args[0].get('sku_id')}"
    return Delivery.ALWAYS, None


class RoomEmitter:
    """The ``emit`` the live rooms are given (``rooms.Emit``): one broadcast to a room on every
    process, in order (see ``socketioseam.LiveRedisManager``)."""

    def __init__(self, server: socketio.AsyncServer) -> None:
        self._manager = cast(LiveRedisManager, server.manager)

    async def __call__(
        self, event: str, data: Mapping[str, Any], room: str, *, version: int | None = None
    ) -> None:
        await self._manager.broadcast(
            event, cast(dict[str, Any], data), room, NAMESPACE, version=version
        )


def fanout(server: socketio.AsyncServer) -> Fanout:
    """The server's local websockets (its ``keep_sweeping`` wants an owner)."""
    return cast(LiveRedisManager, server.manager).fanout


def build_server(
    redis_url: str, channel: str, buffer_bytes: int = 64 * 1024, stuck_s: float = 10.0
) -> socketio.AsyncServer:
    """The server, joined to the other processes through Redis ``channel`` from the start.

    The manager connects on the first connection; namespaces are registered by the caller.
    """
    server = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=LiveRedisManager(
            redis_url, channel, Fanout(delivery, buffer_bytes, stuck_s, _UNSEEN)
        ),
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

"""The live rooms as one resource of the app: Socket.IO server, rooms, namespace and clocks.

``live_rooms`` is the body of the app's cleanup_ctx for them: it builds everything on the
resources set up before it (settings, SQL, Redis, stock, events, tokens, the buy use-case),
spawns the background tasks on the app's lifecycle, and tears down in reverse order.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.users import TOKENS
from livecommerce.checkout.buy import BUY
from livecommerce.events.accounts import TokensRevoked
from livecommerce.events.bus import EVENTS
from livecommerce.events.catalog import ProductChanged
from livecommerce.events.streams import StreamOffAir, StreamOnAir
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.live.rooms.cardcache import CardCache
from livecommerce.live.rooms.figures import FIGURES, ShowFigures, ShowRecorder
from livecommerce.live.rooms.flashsales import FlashSales
from livecommerce.live.rooms.rooms import ROOMS, LiveRooms, ShownProduct
from livecommerce.live.rooms.roomstate import RoomState
from livecommerce.live.transport import socketioserver
from livecommerce.live.transport.eventbudget import SocketLimits
from livecommerce.live.transport.namespace import TOKEN_SWEEP_S, LiveNamespace
from livecommerce.platform.clientaddress import networks
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.lifecycle import LIFECYCLE
from livecommerce.platform.resources import REDIS, REDIS_URL, SETTINGS

CardReader = Callable[[AsyncEngine, int, int | None], Awaitable[ShownProduct | None]]
"""``(engine, product_id, sku_id)`` -> the card a pin shows (see ``rooms.ReadCard``)."""


@asynccontextmanager
async def live_rooms(app: web.Application, product_cards: CardReader) -> AsyncIterator[None]:
    """Set up ``SOCKETIO`` and ``ROOMS`` until exit; ``product_cards`` is the catalog's reader,
    given by the composition root (live does not import the catalog)."""
    settings = app[SETTINGS]
    server = socketioserver.build_server(
        app[REDIS_URL],
        f"{settings.redis_namespace}:socketio",
        settings.socket_send_buffer_bytes,
        settings.socket_stuck_s,
    )
    app[socketioserver.SOCKETIO] = server
    # three heartbeats: a viewer drops out of the count only when two beats in a row were missed
    viewer_ttl_ms = int(settings.viewer_heartbeat_s * 3000)
    state = RoomState(app[REDIS], settings.redis_namespace, viewer_ttl_ms)
    sales = FlashSales(app[ENGINE], app[RESERVATIONS], state, app[EVENTS])

    # The rooms' broadcasts also note what the show's figures are drawn from (see figures.py).
    emit = ShowRecorder(
        socketioserver.RoomEmitter(server), app[ENGINE], state, settings.figures_sample_s
    )
    read_card = CardCache(functools.partial(product_cards, app[ENGINE]))
    app[EVENTS].subscribe(ProductChanged, read_card.product_changed)
    app[FIGURES] = ShowFigures(app[ENGINE], read_card)
    rooms = LiveRooms(
        app[ENGINE], state, sales, app[RESERVATIONS], emit, read_card, events=app[EVENTS]
    )
    rooms.subscribe(app[EVENTS])
    # Written once, by the process holding the stream's media, in the order they happened.
    app[EVENTS].subscribe(StreamOnAir, rooms.stream_on_air, local_only=True)
    app[EVENTS].subscribe(StreamOffAir, rooms.stream_off_air, local_only=True)
    limits = SocketLimits(
        rate=settings.socket_events_per_second,
        burst=settings.socket_event_burst,
        abuse=settings.socket_abuse_limit,
        per_address=settings.sockets_per_address,
    )
    namespace = LiveNamespace(
        rooms,
        app[TOKENS],
        app[BUY],
        limits,
        networks(settings.trusted_proxies),
    )
    server.register_namespace(namespace)
    app[EVENTS].subscribe(TokensRevoked, namespace.tokens_revoked)
    app[ROOMS] = rooms
    app[LIFECYCLE].spawn(namespace.keep_counting(settings.viewer_heartbeat_s), "viewers")
    app[LIFECYCLE].spawn(socketioserver.fanout(server).keep_sweeping(), "slow sockets")
    # An expired token's sockets end within half its lifetime, and at most a minute after.
    sweep_s = min(TOKEN_SWEEP_S, settings.token_ttl_s / 2)
    app[LIFECYCLE].spawn(namespace.keep_checking_tokens(sweep_s), "token sweep")
    app[LIFECYCLE].spawn(sales.run_clock(), "flash-sale clock")
    try:
        yield
    finally:
        await namespace.close()
        await rooms.close()
        await emit.close()
        await server.shutdown()

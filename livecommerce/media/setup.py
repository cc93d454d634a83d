"""The media relays as one resource of the app: the hub (WHIP in, WHEP out) and the stream gate.

``media_relays`` is the body of the app's cleanup_ctx for them; the hub tells the event bus
when a stream goes on or off air, and whoever cares (the live rooms) subscribes on its side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.events.bus import EVENTS
from livecommerce.media.hub import MEDIA, MediaHub
from livecommerce.media.internal import InternalMedia
from livecommerce.media.routing import StreamRouting
from livecommerce.media.rtc.iceconfig import IceConfig
from livecommerce.media.signal import STREAM_GATE, StreamGate
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.resources import REDIS, SETTINGS


@asynccontextmanager
async def media_relays(
    app: web.Application, stream_gate: Callable[[AsyncEngine], StreamGate]
) -> AsyncIterator[None]:
    """Set up ``MEDIA`` and ``STREAM_GATE`` until exit; ``stream_gate`` builds the live
    domain's answer to the WHIP/WHEP handlers' questions (media does not import live)."""
    settings = app[SETTINGS]
    ice = IceConfig.from_settings(settings)
    ice.apply_host_addresses()
    own_url = settings.media_url or settings.public_url or f"http://127.0.0.1:{settings.port}"
    routing = StreamRouting(
        app[REDIS],
        settings.redis_namespace,
        own_url,
        settings.internal_url,
        settings.media_internal_secret,
    )
    # Viewers of a stream another process holds are served here from one pull of it, unless
    # they are redirected to the holder (WHEP_REDIRECT).
    internal = InternalMedia(routing, timeout_s=settings.ice_connect_timeout_s)
    hub = MediaHub(
        ice,
        routing,
        events=app[EVENTS],
        connect_timeout=settings.ice_connect_timeout_s,
        viewers_per_address=settings.whep_sessions_per_address,
        upstream=internal,
        redirect=settings.whep_redirect,
        max_viewers=settings.max_viewers_per_process,
    )
    app[MEDIA] = hub
    app[STREAM_GATE] = stream_gate(app[ENGINE])
    try:
        yield
    finally:
        await hub.close()
        await internal.close()

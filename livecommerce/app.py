"""The application factory: every resource under an AppKey, each with its own cleanup_ctx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from livecommerce import __version__
from livecommerce.accounts import routes as account_routes
from livecommerce.appkeys import ENGINE, LIFECYCLE, REDIS, SETTINGS
from livecommerce.catalog import routes as catalog_routes
from livecommerce.config import Settings
from livecommerce.db.engine import create_engine, migrate
from livecommerce.embedded_redis import EmbeddedRedis
from livecommerce.errors import error_middleware
from livecommerce.health import OPERATIONS as HEALTH_OPERATIONS
from livecommerce.health import install_metrics, metrics_middleware
from livecommerce.lifecycle import Lifecycle
from livecommerce.live import routes as stream_routes
from livecommerce.openapi import Operation, RouteTable

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def api_routes() -> RouteTable:
    table = RouteTable()
    table.add(*HEALTH_OPERATIONS)
    table.add(*account_routes.OPERATIONS)
    table.add(*catalog_routes.OPERATIONS)
    table.add(*stream_routes.OPERATIONS)
    return table


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.database_url)
    if settings.auto_migrate:
        await migrate(engine)
    app[ENGINE] = engine
    yield
    await engine.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        url = await embedded.start()
        log.info("started embedded Redis", extra={"redis_url": url})
    client: Redis = Redis.from_url(url, decode_responses=True, health_check_interval=30)
    app[REDIS] = client
    try:
        yield
    finally:
        await client.aclose()
        if embedded is not None:
            await embedded.stop()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    lifecycle = Lifecycle()
    app[LIFECYCLE] = lifecycle
    yield
    await lifecycle.close()


async def _drain(app: web.Application) -> None:
    # on_shutdown runs before cleanup: stop taking new work, let in-flight requests finish.
    app[LIFECYCLE].draining = True


def create_app(settings: Settings) -> web.Application:
    """Build the whole application; nothing is started until the app runs."""
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware], client_max_size=MAX_BODY
    )
    app[SETTINGS] = settings
    install_metrics(app)
    app.cleanup_ctx.append(_lifecycle)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.on_shutdown.append(_drain)

    table = api_routes()
    document = table.document("livecommerce", __version__)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    table.add(Operation("GET", "/api/openapi.json", openapi, "This document", "operations"))
    document = table.document("livecommerce", __version__)
    table.register(app)
    return app

"""The composition root: builds every resource, each under the AppKey its own package declares
and with its own cleanup_ctx, and wires them together; the logic lives in the packages."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from livecommerce import __version__, pages
from livecommerce.accounts import addressroutes
from livecommerce.accounts import routes as account_routes
from livecommerce.accounts.attemptlimits import ATTEMPTS, AttemptLimiter
from livecommerce.accounts.users import TOKENS, TokenCache
from livecommerce.catalog import photoroutes, stockroutes
from livecommerce.catalog import routes as catalog_routes
from livecommerce.catalog.lowstockmail import LowStockMail
from livecommerce.catalog.productcard import product_card
from livecommerce.catalog.productphotos import THUMBNAIL_SLOTS, THUMBNAILERS
from livecommerce.catalog.products import item_name
from livecommerce.checkout import bag as bag_routes
from livecommerce.checkout import routes as checkout_routes
from livecommerce.checkout import shippingroutes
from livecommerce.checkout.buy import BUY, Buy
from livecommerce.checkout.lineups import StreamDirectory
from livecommerce.checkout.purchases import PURCHASES, Purchases, SkuDirectory
from livecommerce.checkout.receipts import Receipts
from livecommerce.config import Settings
from livecommerce.crosssite import cross_site_middleware
from livecommerce.errors import error_middleware
from livecommerce.events.accounts import TokensRevoked
from livecommerce.events.bus import EVENTS, EventBus
from livecommerce.events.catalog import ProductChanged
from livecommerce.events.orders import OrderChanged, Purchased
from livecommerce.events.stock import SkuFeatured
from livecommerce.events.streams import LineupChanged, StreamEnded, StreamOnAir
from livecommerce.health import OPERATIONS as HEALTH_OPERATIONS
from livecommerce.health import install_metrics, metrics_middleware, observe_http
from livecommerce.inventory.lowstock import LOW_STOCK, LowStockWatcher
from livecommerce.inventory.rebuild import UnpaidHolds, buyers_of
from livecommerce.inventory.reservations import RESERVATIONS, Reservations, UnpaidBounds
from livecommerce.inventory.soldout import SoldOutBoard
from livecommerce.live.follows import LIVE_NOW, LiveNow
from livecommerce.live.rooms.rooms import ROOMS
from livecommerce.live.streams import StreamKeys
from livecommerce.live.transport import (
    figureroutes,
    followroutes,
    invitationroutes,
    roomroutes,
    socketioseam,
    socketioserver,
)
from livecommerce.live.transport import streamroutes as stream_routes
from livecommerce.live.transport.setup import live_rooms
from livecommerce.live.transport.socketioserver import MAX_FRAME_BYTES
from livecommerce.media import signal as media_routes
from livecommerce.media.setup import media_relays
from livecommerce.orders import fulfillmentroutes, shoproutes
from livecommerce.orders import routes as order_routes
from livecommerce.orders.expiry import Reaper
from livecommerce.orders.shops import SHOP_TERMS, ShopTermsCache
from livecommerce.payments import returnroutes
from livecommerce.payments import routes as payment_routes
from livecommerce.payments.cards import CARDS, Cards
from livecommerce.payments.embedded_stripe import (
    EMBEDDED_PUBLISHABLE_KEY,
    EMBEDDED_SECRET_KEY,
    EmbeddedStripe,
)
from livecommerce.payments.payments import PAYMENTS, Payments
from livecommerce.payments.stripe_gateway import StripeGateway, stripe_js_url
from livecommerce.payments.webhooks import WEBHOOKS, Webhooks
from livecommerce.platform.db.engine import ENGINE, create_engine, migrate
from livecommerce.platform.embedded_redis import EmbeddedRedis
from livecommerce.platform.fastlane import FastLane
from livecommerce.platform.lifecycle import LIFECYCLE, Lifecycle
from livecommerce.platform.mail import MAILER, Mailer, SmtpServer
from livecommerce.platform.objectstore import (
    OBJECTS,
    LocalObjectStore,
    ObjectStore,
    S3Location,
    S3ObjectStore,
)
from livecommerce.platform.openapi import RouteTable
from livecommerce.platform.pipelined import HOT_REDIS, PipelinedRedis
from livecommerce.platform.redispool import warm_pool
from livecommerce.platform.resources import REDIS, REDIS_URL, SETTINGS
from livecommerce.securityheaders import install_security_headers, response_headers
from livecommerce.support import routes as support_routes
from livecommerce.support.conversations import CustomerService
from livecommerce.support.notices import Notices

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
API_DESCRIPTION = (
    "Live rooms speak Socket.IO on the `/live` namespace (see the README). Every client event "
    f"is answered by an ack; an event whose JSON exceeds {socketioseam.MAX_EVENT_BYTES} bytes "
    "is answered `payload_too_large`, and a frame over "
    f"{MAX_FRAME_BYTES} bytes closes the connection without an ack. Request bodies: JSON of at "
    "most 1 MiB, nested at most 32 deep, numbers of at most 40 characters, no NaN or duplicate "
    "keys; numbers and booleans must be JSON numbers and booleans."
)


def api_routes() -> RouteTable:
    table = RouteTable()
    table.add(*HEALTH_OPERATIONS)
    table.add(*account_routes.OPERATIONS)
    table.add(*catalog_routes.OPERATIONS)
    table.add(*photoroutes.OPERATIONS)
    table.add(*stockroutes.OPERATIONS)
    table.add(*stream_routes.OPERATIONS)
    table.add(*invitationroutes.OPERATIONS)
    table.add(*roomroutes.OPERATIONS)
    table.add(*checkout_routes.OPERATIONS)
    table.add(*bag_routes.OPERATIONS)
    table.add(*order_routes.OPERATIONS)
    table.add(*payment_routes.OPERATIONS)
    table.add(*addressroutes.OPERATIONS)
    table.add(*shoproutes.OPERATIONS)
    table.add(*shippingroutes.OPERATIONS)
    table.add(*followroutes.OPERATIONS)
    table.add(*fulfillmentroutes.OPERATIONS)
    table.add(*returnroutes.OPERATIONS)
    table.add(*pages.OPERATIONS)
    table.add(*media_routes.OPERATIONS)
    table.add(*figureroutes.OPERATIONS)
    table.add(*support_routes.OPERATIONS)
    return table


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.database_url)
    if settings.auto_migrate:
        await migrate(engine)
    app[ENGINE] = engine
    app[TOKENS] = TokenCache(engine, ttl_s=300.0)  # revocations are pushed (TokensRevoked)
    yield
    await app[TOKENS].close()
    await engine.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        url = await embedded.start()
        log.info("started embedded Redis", extra={"redis_url": url})
    # A blocking pool makes a burst of buyers wait for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=64, timeout=10, decode_responses=True, health_check_interval=30
    )
    # from_pool: the client owns the pool, so closing the client closes its connections too.
    client: Redis = Redis.from_pool(pool)
    await warm_pool(pool, 32)
    app[REDIS] = client
    app[REDIS_URL] = url
    app[HOT_REDIS] = hot = PipelinedRedis(url)
    app[ATTEMPTS] = AttemptLimiter(client, settings.redis_namespace)
    bus = EventBus(client, settings.redis_namespace, hot=hot)
    app[EVENTS] = bus
    app[LIFECYCLE].spawn(bus.run(), "events")
    try:
        yield
    finally:
        await bus.close()
        await hot.close()
        await client.aclose()
        if embedded is not None:
            await embedded.stop()


async def _checkout(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = app[ENGINE]
    embedded: EmbeddedStripe | None = None
    secret_key, webhook_secret, api_base = (
        settings.stripe_secret_key,
        settings.stripe_webhook_secret,
        settings.stripe_api_base,
    )
    if not secret_key:
        embedded = EmbeddedStripe(settings.data_dir)
        api_base = await embedded.start()
        secret_key, webhook_secret = EMBEDDED_SECRET_KEY, embedded.webhook_secret
        base = settings.public_url or f"http://127.0.0.1:{settings.port}"
        await embedded.deliver_webhooks_to(f"{base}/api/stripe/webhook")
        log.info("no STRIPE_SECRET_KEY: payments go to an embedded Stripe emulator")
    gateway = StripeGateway(
        secret_key, webhook_secret, api_base=api_base, max_rps=settings.stripe_max_rps
    )
    app[pages.BROWSER_CONFIG] = pages.BrowserConfig(
        stripe_publishable_key=EMBEDDED_PUBLISHABLE_KEY
        if embedded
        else settings.stripe_publishable_key,
        stripe_js_url=stripe_js_url(settings.stripe_js_url, api_base),
        ice_servers=settings.ice_servers,
    )
    buyer_holds = UnpaidHolds(engine)
    reservations = Reservations(
        app[REDIS],
        settings.redis_namespace,
        app[HOT_REDIS],
        buyer_holds=buyer_holds,
        events_channel=app[EVENTS].channel,
    )
    await reservations.preload_scripts()
    if settings.max_unpaid_per_buyer:
        # A buyer whose token is read here has their unpaid total ready before their first tap.
        app[TOKENS].arrived = reservations.warm_buyer
    app[SHOP_TERMS] = shop_terms = ShopTermsCache(engine)
    payments = Payments(engine, reservations, gateway, app[EVENTS])
    app[RESERVATIONS] = reservations
    purchases = Purchases(
        engine,
        reservations,
        SkuDirectory(engine, item_name=item_name),
        settings.hold_ttl_s,
        StreamDirectory(engine),
        UnpaidBounds(settings.max_unpaid_per_sku, settings.max_unpaid_per_buyer),
        sold_out=SoldOutBoard(
            app[EVENTS],
            # a retry's key lives this long (see Purchases), so these buyers may still retry
            functools.partial(buyers_of, engine, within_s=settings.hold_ttl_s * 2 + 3600),
        ),
        terms=shop_terms,
    )
    app[PURCHASES] = purchases
    purchases.sold_out.subscribe()  # on every process: each refuses the crowd itself
    # On every process (not local_only): each holds its own caches of SKU and stream facts.
    app[EVENTS].subscribe(ProductChanged, purchases.directory.product_changed)
    app[EVENTS].subscribe(LineupChanged, purchases.streams.stream_changed)
    app[EVENTS].subscribe(StreamEnded, purchases.streams.stream_changed)
    app[EVENTS].subscribe(SkuFeatured, purchases.warm)
    app[PAYMENTS] = payments
    app[CARDS] = Cards(payments)
    app[BUY] = buy = Buy(purchases, payments, app[EVENTS], app[LIFECYCLE])
    app[WEBHOOKS] = Webhooks(engine, payments)
    # The receipt goes from the process where the payment landed (claimed once per order).
    receipts = Receipts(engine, app[MAILER], _public_url(settings))
    app[EVENTS].subscribe(OrderChanged, receipts.order_changed, local_only=True)
    base = settings.public_url or f"http://127.0.0.1:{settings.port}"
    app[LOW_STOCK] = low_stock = LowStockWatcher(
        engine, reservations, LowStockMail(engine, app[MAILER], base)
    )
    # On the process where the order moved: the watcher's check is shared through SQL.
    app[EVENTS].subscribe(Purchased, low_stock.purchased, local_only=True)
    app[EVENTS].subscribe(OrderChanged, low_stock.order_changed, local_only=True)
    app[LIFECYCLE].spawn(low_stock.run(), "low-stock alerts")
    reaper = Reaper(engine, reservations, payments, settings.redis_namespace)
    app[LIFECYCLE].spawn(reaper.run(settings.reaper_interval_s), "reaper")
    app[LIFECYCLE].spawn(payments.stock.run(), "stock sync after payments")
    try:
        yield
    finally:
        await buy.close()
        await purchases.close()
        app[TOKENS].arrived = None
        await reservations.close()
        await buyer_holds.close()
        await shop_terms.close()
        await gateway.close()
        if embedded is not None:
            await embedded.stop()


def _public_url(settings: Settings) -> str:
    """Where links in emails point: PUBLIC_URL, else this server on loopback."""
    return settings.public_url or f"http://127.0.0.1:{settings.port}"


async def _live(app: web.Application) -> AsyncIterator[None]:
    # The token cache forgets revoked tokens before the sockets holding them are ended.
    app[EVENTS].subscribe(TokensRevoked, app[TOKENS].revoked)
    # Every process hears a show go on air; the claim rows make each email go once.
    app[LIVE_NOW] = live_now = LiveNow(app[ENGINE], app[MAILER], _public_url(app[SETTINGS]))
    app[EVENTS].subscribe(StreamOnAir, live_now.stream_on_air)
    async with live_rooms(app, product_cards=product_card):
        yield


async def _support(app: web.Application) -> AsyncIterator[None]:
    """Customer service; a conversation's blocked words are its stream's live-chat list."""
    settings = app[SETTINGS]
    rooms = app[ROOMS]

    async def blocked_words(stream_id: int) -> list[str]:
        return (await rooms.state.chat_settings(stream_id))[1]

    app[support_routes.SUPPORT] = CustomerService(
        app[ENGINE],
        app[MAILER],
        blocked_words,
        Notices(settings.public_url or f"http://127.0.0.1:{settings.port}"),
        timedelta(seconds=settings.support_answer_s),
    )
    yield


async def _media(app: web.Application) -> AsyncIterator[None]:
    """WebRTC relays (WHIP in, WHEP out); their on-air changes go to the live rooms."""
    async with media_relays(app, stream_gate=StreamKeys):
        yield


async def _mail(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    smtp = None
    if settings.smtp_host:
        smtp = SmtpServer(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_tls,
        )
    else:
        log.info("no SMTP_HOST: emails are written under DATA_DIR/outbox")
    app[MAILER] = mailer = Mailer(
        settings.mail_from, smtp=smtp, outbox=settings.data_dir / "outbox"
    )
    yield
    await mailer.close()


async def _objects(app: web.Application) -> AsyncIterator[None]:
    """Where photos' thumbnails live: an S3-compatible bucket if one is set, else DATA_DIR."""
    settings = app[SETTINGS]
    store: ObjectStore
    if settings.object_storage_bucket:
        s3 = S3ObjectStore(
            S3Location(
                bucket=settings.object_storage_bucket,
                endpoint_url=settings.object_storage_url,
                region=settings.object_storage_region,
                key_id=settings.object_storage_key_id,
                secret=settings.object_storage_secret,
                public_url=settings.object_storage_public_url,
            )
        )
        await s3.check()
        store = s3
    else:
        store = LocalObjectStore(settings.data_dir / "objects")
    app[OBJECTS] = store
    app[THUMBNAIL_SLOTS] = asyncio.Semaphore(THUMBNAILERS)
    yield
    await store.close()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    lifecycle = Lifecycle()
    app[LIFECYCLE] = lifecycle
    yield
    await lifecycle.close()


async def _drain(app: web.Application) -> None:
    # on_shutdown runs before cleanup: stop taking new work and stop the background tasks
    # while the stores they use are still open.
    await app[LIFECYCLE].close()


def fast_lane(app: web.Application) -> FastLane | None:
    """The listener's fast lane for the crowd's taps on Buy (``platform.fastlane``), once the
    app has started; ``None`` with ``FAST_LANE=0``."""
    if not app[SETTINGS].fast_lane:
        return None
    return FastLane(
        "POST",
        "/api/purchases",
        checkout_routes.quick_answer(app),
        response_headers(app),
        observe_http(app),
    )


def create_app(settings: Settings) -> web.Application:
    """Build the whole application; nothing is started until the app runs."""
    app = web.Application(
        middlewares=[
            metrics_middleware,
            error_middleware,
            pages.html_not_found,
            cross_site_middleware,
        ],
        client_max_size=MAX_BODY,
    )
    app[SETTINGS] = settings
    install_security_headers(app)
    install_metrics(app)
    app.cleanup_ctx.append(_lifecycle)
    app.cleanup_ctx.append(_mail)
    app.cleanup_ctx.append(_objects)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_checkout)
    app.cleanup_ctx.append(_live)
    app.cleanup_ctx.append(_support)
    socketioserver.add_routes(app)
    app.cleanup_ctx.append(_media)
    app.on_shutdown.append(_drain)

    table = api_routes()
    table.publish(app, "/api/openapi.json", "livecommerce", __version__, API_DESCRIPTION)
    table.register(app)
    pages.add_pages(app)
    return app

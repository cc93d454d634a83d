"""Typed keys for every shared resource the app holds (``app[ENGINE]`` and friends)."""

from __future__ import annotations

import socketio
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.users import TokenCache
from livecommerce.checkout.buy import Buy
from livecommerce.checkout.payments import Payments
from livecommerce.checkout.purchases import Purchases
from livecommerce.checkout.webhooks import Webhooks
from livecommerce.config import Settings
from livecommerce.lifecycle import Lifecycle
from livecommerce.live.rooms import LiveRooms
from livecommerce.media.mediahub import MediaHub
from livecommerce.stock.pipelined import PipelinedRedis
from livecommerce.stock.reservations import Reservations

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
REDIS = web.AppKey("redis", Redis)
REDIS_URL = web.AppKey("redis_url", str)
HOT_REDIS = web.AppKey("hot_redis", PipelinedRedis)
METRICS = web.AppKey("metrics", CollectorRegistry)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
RESERVATIONS = web.AppKey("reservations", Reservations)
PURCHASES = web.AppKey("purchases", Purchases)
PAYMENTS = web.AppKey("payments", Payments)
BUY = web.AppKey("buy", Buy)
WEBHOOKS = web.AppKey("webhooks", Webhooks)
TOKENS = web.AppKey("tokens", TokenCache)
ROOMS = web.AppKey("rooms", LiveRooms)
SOCKETIO = web.AppKey("socketio", socketio.AsyncServer)
MEDIA = web.AppKey("media", MediaHub)

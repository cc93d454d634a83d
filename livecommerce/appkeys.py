"""Typed keys for every shared resource the app holds (``app[ENGINE]`` and friends)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.config import Settings
from livecommerce.lifecycle import Lifecycle

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
REDIS = web.AppKey("redis", Redis)
METRICS = web.AppKey("metrics", CollectorRegistry)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)

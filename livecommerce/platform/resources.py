"""AppKeys of the platform resources that no module of ours defines: the settings and Redis.

Every other resource is keyed beside its class (``ENGINE`` in ``db/engine.py``, ``PURCHASES`` in
``checkout/purchases.py`` ...). These two cannot be: ``Settings`` lives in ``config.py``, which
imports neither aiohttp nor any domain, and the Redis client is redis-py's own class.
"""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from livecommerce.config import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
# The URL of that Redis once it is known (it may be an embedded server started by the app).
REDIS_URL = web.AppKey("redis_url", str)

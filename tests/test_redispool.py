"""The Redis pool is filled at start-up; a Redis unreachable then does not stop the server."""

from __future__ import annotations

import logging
import uuid

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from bench.processes import free_port
from livecommerce.platform.redispool import warm_pool


async def test_warm_pool_opens_connections_and_leaves_them_idle(redis_url: str) -> None:
    name = f"warm-{uuid.uuid4().hex[:8]}"
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=8, timeout=2, client_name=name
    )
    admin = Redis.from_url(redis_url)
    try:
        assert await warm_pool(pool, 32) == 8  # at most the pool's size
        clients = [c for c in await admin.client_list() if c["name"] == name]
        assert len(clients) == 8  # open in Redis
        # Given back idle: eight can be taken at once without opening a ninth.
        async with Redis(connection_pool=pool) as client:
            assert await client.ping()
        assert len([c for c in await admin.client_list() if c["name"] == name]) == 8
    finally:
        await pool.disconnect()
        await admin.aclose()


async def test_warm_pool_with_redis_unreachable_logs_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    pool = BlockingConnectionPool.from_url(url, max_connections=8, timeout=2)
    try:
        with caplog.at_level(logging.WARNING, logger="livecommerce.platform.redispool"):
            assert await warm_pool(pool, 4) == 0
        assert "warmed only in part" in caplog.text
    finally:
        await pool.disconnect()

"""Which process holds a stream's media, and where the others send its viewers (real Redis)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bench.processes import free_port
from livecommerce.media.routing import CLAIM_TTL_S, StreamRouting


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_the_holder_keeps_its_viewers_and_the_others_send_theirs_to_it(
    redis: Redis,
) -> None:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    a = StreamRouting(redis, namespace, "http://127.0.0.1:9001/")
    b = StreamRouting(redis, namespace, "http://127.0.0.1:9002")
    assert await b.elsewhere(7, "/whep/7") is None  # nobody holds it

    await a.claim(7)
    assert await a.holder(7) == "http://127.0.0.1:9001"
    assert await a.elsewhere(7, "/whep/7") is None
    assert await b.elsewhere(7, "/whep/7?x=1") == "http://127.0.0.1:9001/whep/7?x=1"
    assert 0 < await redis.ttl(f"{namespace}:media:{{stream7}}") <= CLAIM_TTL_S

    await b.release(7)  # not B's claim: left alone
    assert await b.holder(7) == "http://127.0.0.1:9001"
    await a.release(7)
    assert await b.elsewhere(7, "/whep/7") is None


async def test_the_holder_records_its_internal_address_for_the_pulls(redis: Redis) -> None:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    a = StreamRouting(redis, namespace, "https://a.example.com", "http://10.0.0.1:8081/")
    b = StreamRouting(redis, namespace, "https://b.example.com", "http://10.0.0.2:8081")
    assert await b.internal_holder(7) is None
    await a.claim(7)
    assert await b.holder(7) == "https://a.example.com"  # redirects go to the public one
    assert await b.internal_holder(7) == "http://10.0.0.1:8081"  # pulls to the internal one
    assert await a.internal_holder(7) is None  # A holds it: nothing to pull
    await a.release(7)
    assert await b.internal_holder(7) is None


async def test_processes_share_one_internal_secret(redis: Redis) -> None:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    a = StreamRouting(redis, namespace, "http://127.0.0.1:9001")
    b = StreamRouting(redis, namespace, "http://127.0.0.1:9002")
    secret = await a.secret()
    assert len(secret) >= 32 and await b.secret() == secret
    other_ns = f"t{uuid.uuid4().hex[:8]}"
    other = StreamRouting(redis, other_ns, "http://127.0.0.1:9001")
    assert await other.secret() != secret
    configured = StreamRouting(redis, namespace, "http://127.0.0.1:9003", secret="s" * 20)
    assert await configured.secret() == "s" * 20
    await redis.delete(f"{namespace}:media:secret", f"{other_ns}:media:secret")


async def test_without_redis_nothing_is_routed_and_nothing_raises() -> None:
    down: Redis = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    routing = StreamRouting(down, "lc", "http://127.0.0.1:9001")
    await routing.claim(7)
    await routing.release(7)
    assert await routing.holder(7) is None
    assert await routing.elsewhere(7, "/whep/7") is None
    await down.aclose()


def test_routing_stands_on_redis_alone() -> None:
    """No aiohttp (HTTP is signal.py's) and no aiortc (WebRTC is rtc/'s)."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, livecommerce.media.routing; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'aiortc')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == ""

"""FactCache: one read shared by a crowd, renewed ahead of expiry, dropped when told."""

from __future__ import annotations

import asyncio

import pytest

from livecommerce.platform.factcache import RENEW_AHEAD, FactCache


class Source:
    """What the facts are read from: a dict, and a gate to hold reads open."""

    def __init__(self) -> None:
        self.values: dict[int, str] = {}
        self.reads: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.reading = asyncio.Event()  # set when a read has begun

    async def read(self, key: int) -> str:
        self.reads.append(key)
        self.reading.set()
        found = self.values.get(key)  # what the read sees; its answer comes at the gate
        await self.gate.wait()
        if found is None:
            raise LookupError(key)
        return found


async def test_a_crowd_shares_one_read_and_then_reads_nothing() -> None:
    source = Source()
    source.values[1] = "one"
    source.gate.clear()
    cache = FactCache(source.read, ttl_s=60, owner="test")
    try:
        crowd = [asyncio.create_task(cache.get(1)) for _ in range(100)]
        await asyncio.sleep(0)
        source.gate.set()
        assert await asyncio.gather(*crowd) == ["one"] * 100
        assert await cache.get(1) == "one"
        assert cache.fresh(1) == "one"
        assert source.reads == [1]
    finally:
        await cache.close()


async def test_an_entry_near_its_end_is_renewed_in_the_background() -> None:
    source = Source()
    source.values[1] = "old"
    ttl = 0.2
    cache = FactCache(source.read, ttl_s=ttl, owner="test")
    try:
        assert await cache.get(1) == "old"
        source.values[1] = "new"
        await asyncio.sleep(ttl * (1 - RENEW_AHEAD) + 0.02)  # in the renewal window
        assert cache.fresh(1) == "old"  # served at once, renewal started
        for _ in range(100):
            if cache.fresh(1) == "new":
                break
            await asyncio.sleep(0.005)
        assert cache.fresh(1) == "new"
        assert source.reads == [1, 1]
        await asyncio.sleep(ttl + 0.01)
        assert cache.fresh(1) is None  # expired: nothing renewed it since
    finally:
        await cache.close()


async def test_a_read_that_overlapped_a_forget_is_answered_but_not_kept() -> None:
    source = Source()
    source.values[1] = "before"
    source.gate.clear()
    cache = FactCache(source.read, ttl_s=60, owner="test")
    try:
        reading = asyncio.create_task(cache.get(1))
        await source.reading.wait()
        cache.forget(1)  # the change lands while the read is under way
        source.values[1] = "after"
        source.gate.set()
        assert await reading == "before"
        assert cache.fresh(1) is None
        assert await cache.get(1) == "after"
        assert cache.fresh(1) == "after"
        cache.forget(1)
        assert cache.fresh(1) is None
    finally:
        await cache.close()


async def test_a_failed_read_is_raised_to_every_caller_and_not_kept() -> None:
    source = Source()
    source.gate.clear()
    cache = FactCache(source.read, ttl_s=60, owner="test")
    try:
        crowd = [asyncio.create_task(cache.get(7)) for _ in range(3)]
        await asyncio.sleep(0)
        source.gate.set()
        for outcome in await asyncio.gather(*crowd, return_exceptions=True):
            assert isinstance(outcome, LookupError)
        assert source.reads == [7]
        source.values[7] = "seven"  # made a moment later: found at once
        assert await cache.get(7) == "seven"
    finally:
        await cache.close()


async def test_the_cache_starts_over_past_its_limit() -> None:
    source = Source()
    source.values.update({k: str(k) for k in range(5)})
    cache = FactCache(source.read, ttl_s=60, owner="test", limit=3)
    try:
        for key in range(3):
            await cache.get(key)
        assert [cache.fresh(k) for k in range(3)] == ["0", "1", "2"]
        await cache.get(3)
        assert [cache.fresh(k) for k in range(4)] == [None, None, None, "3"]
    finally:
        await cache.close()


async def test_a_fresh_read_replaces_the_entry() -> None:
    source = Source()
    source.values[1] = "a"
    cache = FactCache(source.read, ttl_s=60, owner="test")
    try:
        assert await cache.get(1) == "a"
        source.values[1] = "b"
        assert await cache.get(1) == "a"
        assert await cache.read_now(1) == "b"
        assert cache.fresh(1) == "b"
    finally:
        await cache.close()


@pytest.mark.parametrize("ttl", [0.0, -1.0])
async def test_no_ttl_keeps_nothing(ttl: float) -> None:
    source = Source()
    source.values[1] = "a"
    cache = FactCache(source.read, ttl_s=ttl, owner="test")
    try:
        assert await cache.get(1) == "a"
        assert await cache.get(1) == "a"
        assert source.reads == [1, 1]
    finally:
        await cache.close()

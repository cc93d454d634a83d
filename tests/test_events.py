"""Domain events reach subscribers on this process and on another one, through a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid

from redis.asyncio import Redis

from livecommerce.events.bus import EventBus
from livecommerce.events.event import Event, event_type
from livecommerce.platform.pipelined import PipelinedRedis


@dataclasses.dataclass(frozen=True)
class Pinged(Event):
    name = "test.pinged"
    stream_id: int
    note: str = ""


async def test_events_reach_this_and_other_processes(redis_url: str) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(redis_url, decode_responses=True)
    hot = PipelinedRedis(redis_url)
    here, there = EventBus(redis, namespace, hot), EventBus(redis, namespace, hot)
    heard_here: list[Pinged] = []
    heard_there: list[Pinged] = []
    got_there = asyncio.Event()

    async def on_here(event: Pinged) -> None:
        heard_here.append(event)

    async def on_there(event: Pinged) -> None:
        heard_there.append(event)
        got_there.set()

    here.subscribe(Pinged, on_here)
    there.subscribe(Pinged, on_there)
    tasks = [asyncio.create_task(here.run()), asyncio.create_task(there.run())]
    try:
        async with asyncio.timeout(10):
            await here.wait_listening()
            await there.wait_listening()
        await here.publish(Pinged(stream_id=7, note="hi"))
        assert heard_here == [Pinged(stream_id=7, note="hi")]  # delivered before publish returns
        await asyncio.wait_for(got_there.wait(), 5)
        assert heard_there == [Pinged(stream_id=7, note="hi")]
        await asyncio.sleep(0.2)
        assert len(heard_here) == 1  # its own message from Redis is not delivered twice
        # Garbage on the channel is logged and skipped, and the listener keeps going.
        await redis.publish(here.channel, "not json")
        await redis.publish(here.channel, '{"event": "test.unknown", "data": {}, "origin": "x"}')
        got_there.clear()
        await here.publish(Pinged(stream_id=8))
        await asyncio.wait_for(got_there.wait(), 5)
        assert [e.stream_id for e in heard_there] == [7, 8]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hot.close()
        await redis.aclose()


def test_event_names_are_registered_once() -> None:
    assert event_type("test.pinged") is Pinged
    assert event_type("nothing.like.this") is None


async def test_a_local_only_subscriber_hears_its_own_process_only(redis_url: str) -> None:
    """A Socket.IO broadcast already reaches every process: its subscriber runs where the
    event happened, not once per process."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(redis_url, decode_responses=True)
    hot = PipelinedRedis(redis_url)
    here, there = EventBus(redis, namespace, hot), EventBus(redis, namespace, hot)
    local_here: list[int] = []
    local_there: list[int] = []
    everywhere_there: list[int] = []
    got_there = asyncio.Event()

    async def on_local_here(event: Pinged) -> None:
        local_here.append(event.stream_id)

    async def on_local_there(event: Pinged) -> None:
        local_there.append(event.stream_id)

    async def on_there(event: Pinged) -> None:
        everywhere_there.append(event.stream_id)
        got_there.set()

    here.subscribe(Pinged, on_local_here, local_only=True)
    there.subscribe(Pinged, on_local_there, local_only=True)
    there.subscribe(Pinged, on_there)
    tasks = [asyncio.create_task(here.run()), asyncio.create_task(there.run())]
    try:
        async with asyncio.timeout(10):
            await here.wait_listening()
            await there.wait_listening()
        await here.publish(Pinged(stream_id=1))
        await asyncio.wait_for(got_there.wait(), 5)
        assert everywhere_there == [1]  # the event did reach the other process
        await there.publish(Pinged(stream_id=2))
        await asyncio.sleep(0.3)
        assert local_here == [1]
        assert local_there == [2]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hot.close()
        await redis.aclose()


async def test_a_listener_whose_connection_is_killed_listens_again(redis_url: str) -> None:
    """Redis drops the subscriber's connection (a restart, a proxy, ``CLIENT KILL``): the
    process subscribes again on its own and hears what is published after."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(redis_url, decode_responses=True)
    hot = PipelinedRedis(redis_url)
    here, there = EventBus(redis, namespace, hot), EventBus(redis, namespace, hot)
    heard: list[int] = []
    got = asyncio.Event()

    async def on_there(event: Pinged) -> None:
        heard.append(event.stream_id)
        got.set()

    there.subscribe(Pinged, on_there)
    task = asyncio.create_task(there.run())
    try:
        async with asyncio.timeout(10):
            await there.wait_listening()
        first = there.connection
        await here.publish(Pinged(stream_id=1))
        await asyncio.wait_for(got.wait(), 5)
        ours = [c for c in await redis.client_list() if c["name"] == there.channel]
        assert len(ours) == 1 and ours[0]["sub"] == "1"
        assert await redis.client_kill_filter(_id=ours[0]["id"]) == 1
        got.clear()
        async with asyncio.timeout(10):
            # At most once: what is published before it subscribes again is not heard.
            while not got.is_set():
                await here.publish(Pinged(stream_id=2))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(got.wait(), 0.1)
        assert heard[0] == 1 and set(heard[1:]) == {2}
        assert there.connection is not None and there.connection > first
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await hot.close()
        await redis.aclose()

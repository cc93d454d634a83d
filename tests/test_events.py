"""Domain events reach subscribers on this process and on another one, through a real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from redis.asyncio import Redis

from livecommerce.events.bus import EventBus
from livecommerce.events.event import Event, event_type


@dataclasses.dataclass(frozen=True)
class Pinged(Event):
    name = "test.pinged"
    stream_id: int
    note: str = ""


async def test_events_reach_this_and_other_processes(redis_url: str) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(redis_url, decode_responses=True)
    here, there = EventBus(redis, namespace), EventBus(redis, namespace)
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
        await redis.aclose()


async def test_a_here_only_subscriber_hears_only_its_own_process(redis_url: str) -> None:
    """For state every process shares: written once, by the process where it happened."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(redis_url, decode_responses=True)
    here, there = EventBus(redis, namespace), EventBus(redis, namespace)
    writes: list[tuple[str, int]] = []
    heard_there = asyncio.Event()

    async def write_here(event: Pinged) -> None:
        writes.append(("here", event.stream_id))

    async def write_there(event: Pinged) -> None:
        writes.append(("there", event.stream_id))

    async def watch_there(event: Pinged) -> None:
        heard_there.set()

    for bus, write in ((here, write_here), (there, write_there)):
        bus.subscribe(Pinged, write, here_only=True)
    there.subscribe(Pinged, watch_there)  # an ordinary subscriber on the same process
    tasks = [asyncio.create_task(here.run()), asyncio.create_task(there.run())]
    try:
        async with asyncio.timeout(10):
            await here.wait_listening()
            await there.wait_listening()
        await here.publish(Pinged(stream_id=7))
        await asyncio.wait_for(heard_there.wait(), 5)
        await there.publish(Pinged(stream_id=8))
        await asyncio.sleep(0.3)
        assert writes == [("here", 7), ("there", 8)]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()


def test_event_names_are_registered_once() -> None:
    assert event_type("test.pinged") is Pinged
    assert event_type("nothing.like.this") is None

"""Delivering events to subscribers on this process at once, and to every other process
through Redis pub/sub (channel ``{namespace}:events``).

A subscriber is an async callable taking the event; it runs once per process that subscribed,
whichever process published. Delivery is at most once: a process that is not connected to Redis
when an event is published does not hear it (subscribers that must not miss a fact re-read the
system of record when they reconnect).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce.events.event import Event, event_type
from livecommerce.platform.pipelined import PipelinedRedis

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Subscriber = Callable[[Any], Awaitable[None]]


class EventBus:
    def __init__(self, redis: Redis, namespace: str, hot: PipelinedRedis) -> None:
        """``hot`` carries what ``publish_soon`` sends and hears the channel (cheaper per message
        than redis-py: a flash sale's winners each publish one, and every process hears it);
        ``redis`` what ``publish`` sends."""
        self._redis = redis
        self._hot = hot
        self.channel = f"{namespace}:events"
        self._origin = uuid.uuid4().hex
        # What this process's own messages start with: heard back, they are dropped unread.
        self._own = json.dumps({"origin": self._origin})[:-1]
        # Each subscriber with its local_only flag.
        self._subscribers: dict[type[Event], list[tuple[Subscriber, bool]]] = defaultdict(list)
        self._listening = asyncio.Event()
        self._connections = 0
        self._queued: list[Event] = []
        self._sender: asyncio.Task[None] | None = None

    def subscribe(
        self,
        kind: type[E],
        subscriber: Callable[[E], Awaitable[None]],
        *,
        local_only: bool = False,
    ) -> None:
        """Call ``subscriber`` for every ``kind`` event, published here or on another process.

        With ``local_only`` only for the events published on this process: for a subscriber
        whose own effect already reaches every process (a Socket.IO broadcast goes through the
        Redis manager), so that it happens once, not once per process.
        """
        self._subscribers[kind].append((subscriber, local_only))

    async def publish(self, event: Event) -> None:
        """Deliver to this process's subscribers, then to the other processes.

        Local subscribers have run when this returns. A Redis failure is raised after the local
        delivery (the caller decides whether the other processes must hear of it).
        """
        await self._deliver(event, remote=False)
        message = json.dumps({"origin": self._origin, **event.to_wire()})
        await self._redis.publish(self.channel, message)

    def publish_soon(self, event: Event) -> None:
        """``publish`` without waiting, for a notice nobody must wait for (a flash sale's winners
        each publish one): the events queued meanwhile are delivered here in order, then sent to
        the other processes in one round trip. A Redis failure is logged, not raised."""
        self._queued.append(event)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_queued(), name="events out")

    async def _send_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            for event in batch:
                await self._deliver(event, remote=False)
            messages = [json.dumps({"origin": self._origin, **e.to_wire()}) for e in batch]
            try:
                hot = self._hot
                await asyncio.gather(*(hot.execute("PUBLISH", self.channel, m) for m in messages))
            except (RedisError, OSError) as exc:
                log.warning(
                    "events not sent to the other processes",
                    extra={"error": str(exc), "events": len(batch)},
                )

    async def close(self) -> None:
        """Send what ``publish_soon`` queued; safe to call twice."""
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _deliver(self, event: Event, *, remote: bool) -> None:
        for subscriber, local_only in self._subscribers.get(type(event), ()):
            if remote and local_only:
                continue
            try:
                await subscriber(event)
            except Exception:
                log.exception("event subscriber failed", extra={"event": event.name})

    @property
    def connection(self) -> int | None:
        """Which subscription to the channel is live (a new number after each reconnection),
        None while none is: a fact heard on an earlier one may have been overtaken by events
        published while this process was not listening."""
        return self._connections if self._listening.is_set() else None

    async def wait_listening(self) -> None:
        """Until this process hears the other processes' events (for start-up and tests)."""
        await self._listening.wait()

    async def run(self) -> None:
        """Listen to the other processes' events until cancelled; reconnects after failures.

        Messages are read as they come (this process's own dropped unread) and delivered one
        at a time, in the order they were published."""
        inbox: collections.deque[str] = collections.deque()
        arrived = asyncio.Event()

        def heard(raw: str) -> None:
            inbox.append(raw)
            arrived.set()

        def subscribed() -> None:
            self._connections += 1
            self._listening.set()

        async def deliver() -> None:
            while True:
                await arrived.wait()
                arrived.clear()
                while inbox:
                    await self._received(inbox.popleft())

        deliverer = asyncio.create_task(deliver(), name="events in")
        try:
            while True:
                try:
                    await self._hot.listen(
                        self.channel, heard, skip=self._own, subscribed=subscribed
                    )
                except (RedisError, OSError) as exc:
                    self._listening.clear()
                    log.warning("event channel lost; reconnecting", extra={"error": str(exc)})
                    await asyncio.sleep(0.5)
        finally:
            self._listening.clear()
            deliverer.cancel()
            await asyncio.gather(deliverer, return_exceptions=True)

    async def _received(self, raw: Any) -> None:
        try:
            message = json.loads(raw)
            if message.get("origin") == self._origin:
                return
            kind = event_type(message["event"])
            if kind is None:
                return  # a newer process's event this one does not know
            event = kind.from_data(message["data"])
        except (TypeError, ValueError, KeyError):
            log.warning("unreadable event on the channel", extra={"raw": str(raw)[:200]})
            return
        await self._deliver(event, remote=True)


EVENTS = web.AppKey("events", EventBus)
